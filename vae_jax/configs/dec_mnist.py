"""DEC / IDEC on MNIST (Xie et al. 2016; Guo et al. 2017; settings of XifengGuo/DEC-keras).

Autoencoder d-500-500-2000-10 (ReLU, linear code and output), MSE (mean over pixels),
batch 256, pretrained end to end as DEC-keras's ``run_exp.py`` does for MNIST: 300
epochs of SGD(lr=1, momentum=0.9) from U(+-1/sqrt(fan_in)) kernels. (Adam 1e-3,
``--config.optim.name=adam --config.optim.learning_rate=1e-3``, lowers the MSE faster
but after 100 epochs its codes gave k-means only 83% on MNIST-70k, DEC 87.7%, seed 0.)
``config.clustering`` holds the DEC / IDEC stage.
"""

import ml_collections

from vae_jax.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.hidden = (500, 500, 2000)  # d-500-500-2000-10, decoder mirrored
    config.model.latent_dim = 10  # K, the embedding
    config.model.kernel_init = "torch_default"  # VarianceScaling(1/3, fan_in, uniform)
    config.objective.name = "mse"
    config.data.name = "mnist"  # all 70,000 images (train + test), as in the paper
    config.data.valid_size = 0
    config.train.batch_size = 256  # B
    config.train.num_epochs = 300  # pretraining epochs (DEC-keras)
    config.optim.name = "sgd"
    config.optim.learning_rate = 1.0
    config.optim.momentum = 0.9
    config.train.write_figures = False

    config.clustering = ml_collections.ConfigDict()
    config.clustering.num_clusters = 10  # C
    config.clustering.alpha = 1.0  # Student's t degrees of freedom (eq. 1)
    config.clustering.gamma = 0.1  # IDEC weight of L_c (Guo et al. 2017)
    config.clustering.update_interval = 140  # T: steps between target refreshes
    config.clustering.tol = 1e-3  # stop when < tol of the labels change
    config.clustering.max_steps = 20000  # SGD steps at most (DEC-keras maxiter)
    config.clustering.batch_size = 256
    config.clustering.kmeans_n_init = 20
    config.clustering.dec_learning_rate = 0.01  # SGD, DEC-keras
    config.clustering.dec_momentum = 0.9
    config.clustering.idec_learning_rate = 1e-3  # Adam, XifengGuo/IDEC
    return config
