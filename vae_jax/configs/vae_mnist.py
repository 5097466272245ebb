"""MLP VAE 784-400-20 on MNIST, Bernoulli likelihood, Adam 1e-3, batch 128.

The classic reference model (Kingma & Welling 2013, §5; pytorch/examples ``vae``),
here on dynamically binarized MNIST so the Bernoulli likelihood is a true density.
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.hidden = (400,)
    config.model.latent_dim = 20
    config.data.name = "mnist"
    config.data.binarize = "dynamic"
    config.data.valid_size = 0  # train on all 60,000 images, as the reference models do
    config.train.batch_size = 128
    config.train.num_epochs = 10
    config.train.log_every = 200
    config.train.checkpoint_every = 2000
    return config
