"""MLP autoencoder 784-512-256-32 on MNIST with mean squared reconstruction."""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.hidden = (512, 256)
    config.model.latent_dim = 32
    config.objective.name = "mse"
    config.data.name = "mnist"
    config.train.batch_size = 128
    config.train.num_epochs = 10
    config.train.log_every = 200
    config.train.checkpoint_every = 2000
    return config
