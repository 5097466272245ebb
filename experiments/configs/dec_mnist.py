"""DEC / IDEC on MNIST (Xie et al. 2016; Guo et al. 2017; settings of XifengGuo/DEC-keras).

The config lives in ``vae_jax/configs/dec_mnist.py`` (installed with the package).
"""

from vae_jax.configs.dec_mnist import get_config  # noqa: F401
