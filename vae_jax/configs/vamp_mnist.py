"""MLP VAE 784-400-20 with a VampPrior of 500 pseudo-inputs on MNIST (Tomczak &
Welling 2018), otherwise ``vae_mnist``: Bernoulli likelihood on dynamically binarized
MNIST, Adam 1e-3, batch 128, 10 epochs, so the two compare prior against prior.

The paper's one-layer MNIST model instead used two gated dense layers of 300 units,
K = 40 latents, Adam 5e-4 with batch 100, a KL warm-up over 100 epochs and up to 2000
epochs with early stopping (50 epochs), logvar clipped to [-6, 2]: that setting is
``vamp_paper_mnist``. Kept from it here: C = 500 pseudo-inputs, u = hardtanh_[0, 1](W),
W ~ N(0.05, 0.01^2) (``models.vampprior``).
"""

import ml_collections

from vae_jax.configs import vae_mnist


def get_config() -> ml_collections.ConfigDict:
    config = vae_mnist.get_config()
    config.model.kind = "vamp_vae"
    config.model.num_pseudo_inputs = 500  # C, as the paper's MNIST experiments
    return config
