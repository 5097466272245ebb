"""One-class anomaly detection on MNIST (Ruff et al. 2018 protocol), AE and VAE scores.

One MLP autoencoder (or VAE) per digit, trained on that digit's training images only;
the 10 models train together as one vmapped XLA program (``vae_jax/anomaly.py``).
Ruff et al. use a LeNet-type conv AE, Adam 1e-4, 150 epochs, batch 200; this MLP with
Adam 1e-3 is the quick default. ``--config.model.kind=vae --config.objective.name=elbo``
gives the VAE (Bernoulli likelihood on grey levels).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.hidden = (512, 128)  # encoder widths; decoder mirrored
    config.model.latent_dim = 32  # K (Ruff et al.'s DCAE code size)
    config.objective.name = "mse"
    config.data.name = "mnist"  # or fashion_mnist
    config.data.valid_size = 0
    config.train.batch_size = 200  # B (Ruff et al.)
    config.train.num_epochs = 20  # epochs of the largest class (one-class models)
    config.train.write_figures = False
    return config
