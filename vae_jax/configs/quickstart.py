"""Quickstart: a VAE on scikit-learn's bundled digits; under a minute on 2 CPU cores."""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.hidden = (128,)
    config.model.latent_dim = 8
    config.train.num_epochs = 300
    config.train.log_every = 500
    config.train.eval_every = 1000
    return config
