"""Sparse autoencoder 784-196-784 on MNIST: sigmoid code, target activation rho = 0.05.

Ng 2011 ("Sparse autoencoder" notes, §3): L = MSE + beta sum_j KL(rho || rho_hat_j),
rho_hat_j = mean activation of unit j over the batch (a batch-level penalty).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.hidden = ()  # one code layer: 784 -> 196 -> 784
    config.model.latent_dim = 196  # K
    config.model.code_activation = "sigmoid"
    config.objective.name = "sparse_mse"
    config.objective.sparsity_target = 0.05  # rho
    config.objective.sparsity_weight = 0.03  # beta (MSE is per pixel, so beta is small)
    config.optim.learning_rate = 3e-3
    config.data.name = "mnist"
    config.optim.schedule = "cosine"
    config.train.batch_size = 128
    config.train.num_steps = 3000
    config.train.log_every = 500
    config.train.checkpoint_every = 3000
    return config
