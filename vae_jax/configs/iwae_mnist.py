"""Burda, Grosse & Salakhutdinov 2015 (IWAE), §5: MNIST, dynamically binarized.

One stochastic layer 784-200-200-50 (tanh) by default; ``model.stochastic_layers = 2``
gives the 200-200-100 / 100-100-50 model. k = ``objective.num_samples``; the
objective is "elbo" (VAE with k samples) or "iwae" (L_k). Settings from yburda/iwae
(``experiments.py``, ``optimizers.py``, ``iwae.py``): 59,600 training images (400 held
out), batch 20, Adam eps 1e-4, the 8-stage 3^i-epoch schedule (3,280 epochs), decoder
output bias at the logit of the training mean.

Adam beta1: the authors' code uses 0.99 (``optimizers.Adam`` default); the paper text
is said to give 0.9 (unverified). We follow the code, which produced Table 1. The
authors' Adam also starts its second moments at one and adds eps to sqrt(v) before
bias correction; optax's Adam does neither (a negligible difference after warm-up).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.stochastic_layers = 1  # 1 | 2
    config.model.hidden = (200, 200)  # x <-> z1
    config.model.latent_dim = 50  # K (K1 = 100 for two layers, see below)
    config.model.hidden2 = (100, 100)  # z1 <-> z2 (two layers only)
    config.model.latent_dim2 = 50  # K2 (two layers only)
    config.model.activation = "tanh"
    config.model.output_bias = "data_mean"
    config.objective.name = "iwae"  # "iwae" | "elbo" (the paper's VAE)
    config.objective.num_samples = 1  # k
    config.data.name = "mnist"
    config.data.binarize = "dynamic"
    config.data.valid_size = 400  # the paper's 400 held-out training images
    config.optim.schedule = "burda"
    config.optim.learning_rate = (
        1e-3  # stage 0 rate; stage i: 1e-4 round(10^(1-i/7), 1)
    )
    config.optim.b1 = 0.99  # yburda/iwae optimizers.py (see module docstring)
    config.optim.b2 = 0.999
    config.optim.eps = 1e-4
    config.train.batch_size = 20
    config.train.num_epochs = 3280  # all 8 stages = 9,774,400 steps at B = 20
    config.train.steps_per_dispatch = 1000
    config.train.log_every = 10_000
    config.train.checkpoint_every = 50_000
    config.train.keep_checkpoints = 2
    config.train.eval_batch_size = 1000
    config.train.write_figures = False
    return config
