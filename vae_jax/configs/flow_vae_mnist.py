"""MLP VAE 784-400-20 on MNIST with a planar-flow posterior of L = 10 steps.

``vae_mnist.py``'s model, data and optimiser, with q(z|x) a diagonal Gaussian pushed
through 10 amortised planar flows (Rezende & Mohamed 2015, eq. 10-13, App. A; L = 10
is the shortest flow of their MNIST comparison). The KL is estimated by Monte Carlo.
"""

import ml_collections

from vae_jax.configs import vae_mnist


def get_config() -> ml_collections.ConfigDict:
    config = vae_mnist.get_config()
    config.model.kind = "flow_vae"
    config.model.flow_length = 10  # L planar steps: 10 (2K + 1) = 410 encoder outputs
    return config
