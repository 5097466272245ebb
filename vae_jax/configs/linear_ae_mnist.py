"""Linear autoencoder 784-K-784 on centred MNIST: converges to the PCA subspace.

Baldi & Hornik 1989: the squared-error optimum of x_hat = W_d W_e x spans the top-K
principal subspace. Adam with cosine decay to 0 lets the small-eigenvalue directions
converge (compare with ``vae_jax.pca``: principal angles, MSE / Eckart-Young optimum).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.architecture = "linear"
    config.model.latent_dim = 10  # K
    config.objective.name = "mse"
    config.data.name = "mnist"
    config.data.center = True  # subtract the training mean (PCA's centring)
    config.optim.learning_rate = 3e-3
    config.optim.schedule = "cosine"
    config.train.batch_size = 256
    config.train.num_steps = 8000  # K = 10: largest principal angle 0.10 deg
    config.train.steps_per_dispatch = 500
    config.train.log_every = 1000
    config.train.checkpoint_every = 6000
    return config
