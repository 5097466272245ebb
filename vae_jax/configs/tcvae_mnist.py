"""beta-TCVAE, MLP 784-400-10 on MNIST, beta = 6 (Chen et al. 2018).

``vae_mnist``'s model and data (Bernoulli likelihood, dynamically binarized MNIST,
Adam 1e-3) with K = 10 latents, trained on the batch's -ELBO + (beta - 1) TC_hat:
the mean of recon + MI + beta TC + dimension-wise KL (Chen et al., eq. 4 with alpha =
gamma = 1, beta = 6 as for their dSprites runs). TC_hat is the minibatch-weighted-
sampling estimate (App. C.1; ``tc.py``); batch 256, since the estimator's bias
shrinks as the batch grows.
"""

import ml_collections

from vae_jax.configs import vae_mnist


def get_config() -> ml_collections.ConfigDict:
    config = vae_mnist.get_config()
    config.model.latent_dim = 10
    config.objective.name = "beta_tcvae"
    config.objective.tc_beta = 6.0  # beta: weight of the total correlation
    config.objective.tc_dataset_size = 0  # N = the training set (60,000 images)
    config.objective.tc_estimator = "mws"
    config.train.batch_size = 256
    return config
