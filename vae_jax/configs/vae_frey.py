"""VAE on Frey faces with a Gaussian likelihood (Kingma & Welling 2013, §5).

200 hidden units, K = 2 (the paper's manifold figure), learned sigma of p(x|z).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.hidden = (200,)
    config.model.latent_dim = 2
    config.model.activation = "tanh"
    config.objective.likelihood = "gaussian"
    config.objective.sigma = 0.0  # learned
    config.data.name = "frey_faces"
    config.optim.learning_rate = 3e-4
    config.train.batch_size = 100
    config.train.num_epochs = 300
    config.train.log_every = 500
    config.train.checkpoint_every = 2000
    return config
