"""IWAE with doubly-reparameterised gradients (DReG; Tucker, Lawson, Gu & Maddison
2019, eq. 7) on dynamically binarized MNIST, k = 64 as in their MNIST experiments.

The model, data and optimiser are ``iwae_mnist.py``'s (Burda et al. 2015, §5:
784-200-200-50 tanh, batch 20, Adam eps 1e-4, the 3^i-epoch schedule). DReG keeps the
IWAE bound L_k but estimates the encoder's gradient without the score-function term,
whose signal-to-noise ratio falls with k (Rainforth et al. 2018).

The same model trains with the importance-weighted variants of Rainforth et al. 2018:
  --config.objective.name=miwae --config.objective.num_groups=8 \
      --config.objective.num_samples=8      # (1/M) sum_m L_k of M groups of k
  --config.objective.name=piwae --config.objective.num_groups=8 \
      --config.objective.num_samples=8      # decoder on L_{Mk}, encoder on MIWAE
  --config.objective.name=ciwae --config.objective.ciwae_beta=0.5
                                            # beta ELBO + (1 - beta) L_k
"""

import ml_collections

from vae_jax.configs import iwae_mnist


def get_config() -> ml_collections.ConfigDict:
    config = iwae_mnist.get_config()
    config.objective.name = "iwae_dreg"  # | "iwae" | "miwae" | "piwae" | "ciwae"
    config.objective.num_samples = 64  # k (per group for miwae / piwae)
    config.objective.num_groups = 1  # M (miwae / piwae)
    return config
