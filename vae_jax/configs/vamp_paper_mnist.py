"""The one-layer VampPrior VAE of Tomczak & Welling 2018 (AISTATS, §5, Table 2) on
dynamically binarized MNIST, at the setting of the authors' code (jmtomczak/
vae_vampprior, run as ``experiment.py --dataset_name dynamic_mnist
--dynamic_binarization``).

Setting: encoder x -> 300 -> 300 and decoder z -> 300 -> 300 -> x of gated dense
layers, K = 40 latents, C = 500 pseudo-inputs, Bernoulli likelihood, dynamic
binarization of the 50,000 training images (the last 10,000 of MNIST's training set
held out for validation, as their ``load_dynamic_mnist``), batch 100, Adam 5e-4 on
per-tensor normalised gradients, KL warm-up over 100 epochs, up to 2000 epochs with
the validation loss evaluated once per epoch (500 steps).

Taken from their code: the gated layers h = (W x + b) * sigmoid(V x + c) and the
300-300 trunks (``models/VAE.py``, ``utils/nn.py`` ``GatedDense``); He init
N(0, 2 / fan_in), untruncated, of every linear layer (``utils/nn.py`` ``he_init``);
the encoder's log-variance through hardtanh(-6, 2) (``models/VAE.py`` ``q_z_logvar``),
also for the prior's components q(z | u_c); u = hardtanh_[0, 1](W), W ~ N(0.05, 0.01^2)
(``models/Model.py``, ``utils/load_data.py``; ``models.vampprior``); AdamNormGrad's
g / (||g||_2 + 1e-7) per parameter tensor before Adam, betas (0.9, 0.999), eps 1e-8
(``utils/optimizer.py``); lr 5e-4, batch 100, 2000 epochs, warm-up 100 epochs,
early stopping after 50 epochs without improvement once the warm-up is over
(``experiment.py``, ``utils/perform_experiment.py``).

Differs: the KL weight ramps linearly per step, beta = step / 50,000, where theirs is
beta = epoch / 100 per epoch (epochs from 1: 0.01 in the first epoch, 1 from epoch
100; ``utils/training.py``); biases start at zero where torch's nn.Linear default is
U(+-1/sqrt(fan_in)); the decoder outputs logits (log p(x|z) by log-sigmoid) where
theirs outputs sigmoid means clamped to [1e-5, 1 - 1e-5] (``utils/distributions.py``
``log_Bernoulli``); the validation and test images are binarized once, as theirs,
but from this run's key (theirs: numpy seed 777); their seed is 14.
"""

import ml_collections

from vae_jax.configs import vamp_mnist

STEPS_PER_EPOCH = 500  # 50,000 training images / batch 100


def get_config() -> ml_collections.ConfigDict:
    config = vamp_mnist.get_config()
    config.model.kind = "vamp_vae"
    config.model.architecture = "mlp"
    config.model.hidden = (300, 300)  # GatedDense 300-300 both ways (models/VAE.py)
    config.model.activation = "gated"  # (W x + b) * sigmoid(V x + c)
    config.model.latent_dim = 40  # z1_size
    config.model.num_pseudo_inputs = 500  # number_components
    config.model.logvar_range = (-6.0, 2.0)  # hardtanh(-6, 2) on q's log-variance
    config.model.kernel_init = "he_normal_untruncated"  # utils/nn.py he_init
    config.objective.name = "elbo"
    config.objective.likelihood = "bernoulli"
    config.objective.num_samples = 1
    config.objective.kl_warmup_steps = 100 * STEPS_PER_EPOCH  # warmup = 100 epochs
    config.data.name = "mnist"
    config.data.binarize = "dynamic"
    config.data.valid_size = 10000  # the last 10,000 training images, as theirs
    config.optim.name = "adam"
    config.optim.learning_rate = 5e-4
    config.optim.schedule = "constant"
    config.optim.normalize_gradients = True  # AdamNormGrad (utils/optimizer.py)
    config.train.batch_size = 100
    config.train.num_epochs = 2000
    config.train.eval_every = STEPS_PER_EPOCH  # the validation loss once per epoch
    config.train.log_every = STEPS_PER_EPOCH
    config.train.checkpoint_every = 10 * STEPS_PER_EPOCH
    # theirs stops once more than 50 epochs (e > 50) passed without improvement,
    # counting from epoch 100 (the count is reset while epoch < warm-up)
    config.train.early_stopping_patience = 51
    config.train.early_stopping_start = 99 * STEPS_PER_EPOCH  # epoch 100 counts
    return config
