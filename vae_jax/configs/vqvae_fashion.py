"""Convolutional VQ-VAE on Fashion-MNIST grey levels: N = 16 code vectors of dim C = 16
from a codebook of M = 256 entries (16 x 8 = 128 bits per image), squared error +
codebook + 0.25 commitment (van den Oord et al. 2017, eq. 3), Adam 1e-3, batch 128,
20 epochs.

The trunk and decoder of ``vae_fashion_conv`` (two stride-2 3x3 ReLU convolutions,
32 and 64 channels, 28 -> 14 -> 7; the decoder mirrors them), with a dense layer to the
N x C code vectors in place of the Gaussian heads. Not generative by itself (the paper
fits a PixelCNN prior over the indices); ``vae_jax.studies.expost`` can fit a density
to its continuous codes z_q. The last 10,000 training images are the validation split.
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "vqvae"
    config.model.architecture = "conv"
    config.model.conv_features = 32  # 32 and 64 channels; the decoder mirrors them
    config.model.hidden = ()  # unused by architecture="conv"
    config.model.num_latents = 16  # N
    config.model.code_dim = 16  # C
    config.model.codebook_size = 256  # M: log2 M = 8 bits per code vector
    config.objective.name = "vq"
    config.objective.commitment = 0.25  # beta, as the paper (§4.1)
    config.data.name = "fashion_mnist"  # grey levels in [0, 1], squared error
    config.train.batch_size = 128
    config.train.num_epochs = 20  # 390 steps per epoch (50,000 training images)
    config.train.log_every = 390
    config.train.eval_every = 1950  # every 5 epochs, on the validation split
    config.train.checkpoint_every = 1950
    # One step per XLA call: XLA:CPU runs convolutions ~6x slower inside a loop body
    # (jax-ml/jax#12868), as in vae_fashion_conv.
    config.train.steps_per_dispatch = 1
    return config
