"""Convolutional VAE on Fashion-MNIST, Bernoulli likelihood on dynamically binarized
images, Adam 1e-3, batch 128, 20 epochs.

A small conv VAE of the usual kind (the encoder of TensorFlow's CVAE tutorial): q(z|x)
from two stride-2 3x3 ReLU convolutions with 32 and 64 channels (28 -> 14 -> 7) and a
dense layer to the mean and log-variance of K = 16 latents; p(x|z) mirrors it (dense
to 7x7x64, two stride-2 3x3 transposed convolutions, 64 -> 32 -> 1 channels). Every step draws a fresh Bernoulli sample of the
grey levels (``data.binarize="dynamic"``; evaluation uses one fixed sample), so the
Bernoulli likelihood is a density and the ELBO is in nats per binarized image,
comparable with binarized-MNIST numbers. ``--config.data.binarize=none`` trains on the
grey levels themselves (Bernoulli cross-entropy: not a normalised density, its "ELBO"
is not a bound on a log-likelihood). The last 10,000 training images are the
validation split (``eval_every``: model selection on it; the test split is evaluated
once, at the end).
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.architecture = "conv"
    config.model.conv_features = 32  # 32 and 64 channels; the decoder mirrors them
    config.model.hidden = ()  # unused by architecture="conv"
    config.model.latent_dim = 16
    config.data.name = "fashion_mnist"
    config.data.binarize = "dynamic"
    config.train.batch_size = 128
    config.train.num_epochs = 20  # 390 steps per epoch (50,000 training images)
    config.train.log_every = 390
    config.train.eval_every = 1950  # every 5 epochs, on the validation split
    config.train.checkpoint_every = 1950
    # One step per XLA call: XLA:CPU runs convolutions ~6x slower inside a loop body
    # (jax-ml/jax#12868); a step here is ~0.1 s, so dispatch costs nothing.
    config.train.steps_per_dispatch = 1
    return config
