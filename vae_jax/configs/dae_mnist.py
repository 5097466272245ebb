"""Denoising autoencoder 784-256-64 on MNIST: reconstruct x from x + N(0, sigma^2 I).

Vincent et al. 2008 / 2010: loss ||x - g(f(x_tilde))||^2 with fresh noise every step.
Compare its PSNR on noisy test images with a plain AE's (``vae_jax.autoencoders``).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.hidden = (256,)
    config.model.latent_dim = 64  # K
    config.objective.name = "denoising_mse"
    config.objective.corruption = (
        "gaussian"  # "gaussian" | "masking" | "salt_and_pepper"
    )
    config.objective.noise_level = 0.3  # sigma
    config.data.name = "mnist"
    config.optim.schedule = "cosine"
    config.train.batch_size = 128
    config.train.num_steps = 3000  # ~8 epochs of 50,000; minutes on 2 CPU cores
    config.train.log_every = 500
    config.train.checkpoint_every = 3000
    return config
