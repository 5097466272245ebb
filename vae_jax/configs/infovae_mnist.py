"""InfoVAE with MMD (MMD-VAE), MLP 784-400-20 on MNIST (Zhao et al. 2017).

``vae_mnist``'s model and data (Bernoulli likelihood, dynamically binarized MNIST,
Adam 1e-3, batch 128), trained on recon + (1 - alpha) KL + (alpha + lambda - 1)
MMD^2_u(q(z), p(z)) with alpha = 0, lambda = 1000: the ELBO plus 999 MMD^2, so
q(z|x) stays a variational posterior (``elbo`` and ``log_likelihood`` are bounds of
the same model) while the aggregate posterior is pulled onto p(z). RBF kernel,
s = sqrt(K) (2 s^2 = 2 K).
"""

import ml_collections

from vae_jax.configs import vae_mnist


def get_config() -> ml_collections.ConfigDict:
    config = vae_mnist.get_config()
    config.objective.name = "info_vae"
    config.objective.info_alpha = 0.0  # alpha: keeps the ELBO's KL at weight 1
    config.objective.mmd_weight = 1000.0  # lambda: MMD^2 weight alpha + lambda - 1
    config.objective.mmd_kernel = "rbf"
    config.objective.mmd_scale = 0.0  # s = sqrt(K)
    return config
