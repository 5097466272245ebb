"""DEC / IDEC on MNIST (Xie et al. 2016; Guo et al. 2017; settings of XifengGuo/DEC-keras).

Autoencoder d-500-500-2000-10 (ReLU, linear code and output), MSE, batch 256. DEC-keras
pretrains 300 epochs with SGD(lr=1, momentum=0.9); the default here is Adam 1e-3, which
gets far in few epochs (``--config.optim.name=sgd --config.optim.learning_rate=1.0`` for
the paper-style run). ``config.clustering`` holds the DEC / IDEC stage.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.kind = "ae"
    config.model.hidden = (500, 500, 2000)  # d-500-500-2000-10, decoder mirrored
    config.model.latent_dim = 10  # K, the embedding
    config.objective.name = "mse"
    config.data.name = "mnist"  # all 70,000 images (train + test), as in the paper
    config.data.valid_size = 0
    config.train.batch_size = 256  # B
    config.train.num_epochs = 300  # pretraining epochs (DEC-keras)
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
