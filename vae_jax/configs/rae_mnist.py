"""RAE-L2 784-512-256-20 on MNIST: squared error + 1e-4 ||z||^2 / 2 + 1e-7 ||theta_dec||^2.

Ghosh et al. 2020 (eq. 11; MNIST weights beta = 1e-4, lambda = 1e-7 of the authors'
code) with an MLP instead of their conv net. Not generative by itself: sample it with
an ex-post density on its training codes (``vae_jax.studies.expost``, e.g. a
10-component Gaussian mixture, Ghosh et al. 2020, §4-5).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "rae"
    config.model.hidden = (512, 256)
    config.model.latent_dim = 20  # K
    config.objective.name = "rae_l2"  # "rae_gp": gradient_penalty on dg/dz instead
    config.objective.code_penalty = 1e-4  # beta
    config.objective.decoder_weight_decay = 1e-7  # lambda
    config.data.name = "mnist"  # grey levels in [0, 1], squared error
    config.train.batch_size = 100  # as the authors
    config.train.num_epochs = 20
    config.train.log_every = 500
    config.train.checkpoint_every = 5000
    return config
