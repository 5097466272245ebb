"""WAE-MMD, MLP 784-400-20 on MNIST grey levels (Tolstikhin et al. 2018, Algorithm 2).

Deterministic encoder and decoder as ``vae_mnist`` (one hidden layer of 400, K = 20),
cost c(x, y) = ||x - y||^2 summed over pixels, the IMQ kernel with C = 2 K (p(z) =
N(0, I); the paper's §4), batch 100 as the paper's MNIST runs. Samples: G(z),
z ~ N(0, I).

lambda = 100, not the paper's 10: the authors' code (tolstikhin/wae) weighs its
penalty against 0.05 ||x - y||^2, i.e. lambda = 200 against the plain sum, and sums
seven IMQ scales 0.1 C .. 10 C (its MNIST encoder is convolutional with K = 8). Here,
after 3,000 steps, lambda = 10 / 100 / 1000 gave test MSE 0.0137 / 0.0143 / 0.0169 per
pixel and MMD^2_u(2,000 test codes, 2,000 prior draws) 0.030 / 0.010 / 0.005
(two prior samples: 0.0002).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "wae"
    config.model.hidden = (400,)
    config.model.latent_dim = 20
    config.objective.name = "wae_mmd"
    config.objective.mmd_weight = 100.0  # lambda (see the module docstring)
    config.objective.mmd_kernel = "imq"
    config.objective.mmd_scale = 0.0  # C = 2 K sigma_z^2 = 40
    config.data.name = "mnist"
    config.train.batch_size = 100
    config.train.num_epochs = 10
    config.train.log_every = 200
    config.train.checkpoint_every = 2000
    return config
