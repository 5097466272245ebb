"""Default configuration: every field the runner knows, with its symbol and unit."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """A small MLP VAE on scikit-learn's bundled 8x8 digits (offline, seconds on CPU)."""
    config = ml_collections.ConfigDict()
    config.seed = 0  # root of every PRNG key (init, train, data, eval)

    config.model = ml_collections.ConfigDict()
    config.model.kind = "vae"  # a registered family: --list_models prints them
    config.model.architecture = "mlp"  # "mlp" | "conv" | "conv1d" (series) | "linear"
    config.model.hidden = (128,)  # encoder hidden widths; the decoder mirrors them
    config.model.latent_dim = 8  # K
    # "relu" | "tanh" | "elu" | "gelu" | "softplus" | "sigmoid" | "linear", or "gated"
    # (mlp only): each hidden layer (W x + b) * sigmoid(V x + c) (Dauphin et al. 2017)
    config.model.activation = "relu"
    config.model.code_activation = "linear"  # AE code layer ("sigmoid" for a sparse AE)
    config.model.conv_features = 32  # channels of the first conv layer (conv only)
    config.model.dtype = "float32"  # compute dtype; params stay float32
    # Dense kernels: "lecun_normal" (Flax) | "glorot_uniform" (Keras) | "torch_default"
    # | "he_normal_untruncated" (N(0, 2 / fan_in), torch's he_init; Flax's is truncated)
    config.model.kernel_init = "lecun_normal"
    # Biases: "zeros" (Flax) | "torch_default" (U(+-1/sqrt(fan_in)), PyTorch's layers)
    config.model.bias_init = "zeros"
    config.model.stochastic_layers = 1  # 1 | 2 (Burda et al. 2015's two-layer MLP VAE)
    config.model.hidden2 = (100, 100)  # z1 <-> z2 hidden widths (stochastic_layers=2)
    config.model.latent_dim2 = (
        50  # K2, top latent (stochastic_layers=2); K1 = latent_dim
    )
    config.model.output_bias = "zeros"  # "zeros" | "data_mean" (logit of train mean)
    config.model.posterior = "diagonal"  # q(z|x): "diagonal" | "full" (Cholesky L(x))
    # (lo, hi): q(z|x)'s log-variance clipped to [lo, hi] in encode, e.g. (-6.0, 2.0),
    # the hardtanh of Tomczak & Welling 2018's code; None = unclipped. Kinds vae
    # (diagonal, one layer), vamp_vae (its prior's components too), cvae, flow_vae
    config.model.logvar_range = ml_collections.config_dict.placeholder(tuple)
    # C, pseudo-inputs u_c of the VampPrior (kind="vamp_vae"); 500 for MNIST as in
    # Tomczak & Welling 2018. A shape: sweeps over it run in process mode
    config.model.num_pseudo_inputs = 500
    # L, planar flow steps of q(z|x) (kind="flow_vae"; Rezende & Mohamed 2015)
    config.model.flow_length = 10
    # kind="vqvae" (van den Oord et al. 2017): N code vectors of dim C, M codes
    config.model.num_latents = 16  # N, code vectors z_e(x) per example (K = N * C)
    config.model.code_dim = 16  # C, dimension of a code vector and a codebook entry
    config.model.codebook_size = 256  # M, entries e_j of the codebook [M, C]
    # kind="cvae" (Sohn et al. 2015): classes of the one-hot label columns
    config.model.num_classes = 10

    config.objective = ml_collections.ConfigDict()
    config.objective.name = (
        "elbo"  # "elbo" (VAE) | "iwae" (L_k, k = num_samples) | "mse" (AE)
    )
    config.objective.likelihood = "bernoulli"  # "bernoulli" | "gaussian"
    config.objective.sigma = 0.0  # Gaussian sigma of p(x|z); 0 = learned
    config.objective.num_samples = 1  # S, Monte-Carlo samples of z per example
    # "miwae" / "piwae" (Rainforth et al. 2018): M groups of k = num_samples draws
    config.objective.num_groups = 1  # M, groups of k samples per example
    config.objective.ciwae_beta = 0.5  # beta of "ciwae": beta ELBO + (1 - beta) L_k
    config.objective.beta = 1.0  # weight of KL(q||p); 1 = the ELBO
    config.objective.kl_warmup_steps = 0  # beta ramps linearly from 0 over these steps
    config.objective.free_bits = 0.0  # lambda, nats per latent dim ("elbo"); 0 = off
    # "denoising_mse" (AE): corruption of the input, fresh every step (corruptions.py)
    config.objective.corruption = (
        "gaussian"  # "gaussian" | "masking" | "salt_and_pepper"
    )
    config.objective.noise_level = 0.3  # sigma (gaussian) or fraction of pixels hit
    # "sparse_mse" (AE, sigmoid code): + sparsity_weight * sum_j KL(rho || rho_hat_j)
    config.objective.sparsity_target = (
        0.05  # rho, target mean activation of a code unit
    )
    config.objective.sparsity_weight = 0.03  # beta of the batch-level KL penalty
    # "robust_mse" (AE; Barron 2019): rho(e) per example, e = ||x - g(f(x))||^2 / D,
    # rho = c^2 log(1 + e / c^2) at alpha = 0; weight drho/de = (1 + e/c^2)^(alpha/2-1)
    config.objective.robust_scale = 0.01  # c^2, squared error per pixel
    config.objective.robust_shape = 0.0  # alpha <= 2: 0 Cauchy, -2 Geman-McClure, 2 MSE
    # "trimmed_mse" (AE; Shen & Sanghavi 2019, ITLM per minibatch): each step's loss is
    # (1/B) sum of the B - floor(alpha B) smallest per-example MSEs (the rest: no grad)
    config.objective.trim_fraction = 0.1  # alpha in [0, 1), >= the outlier share
    # "wae_mmd" (kind="wae"; Tolstikhin et al. 2018) and "info_vae" (kind="vae"; Zhao
    # et al. 2017): + weight * MMD^2_u(B codes of the batch, B draws of p(z))
    config.objective.mmd_weight = 10.0  # lambda (info_vae: MMD^2 weight alpha+lambda-1)
    # k(z, z'): "imq" C / (C + ||z - z'||^2) | "rbf" exp(-||z - z'||^2 / (2 s^2))
    config.objective.mmd_kernel = "imq"
    config.objective.mmd_scale = 0.0  # C (imq) or s (rbf); 0 = C = 2K, s = sqrt(K)
    config.objective.info_alpha = 0.0  # alpha: info_vae = recon + (1 - alpha) KL + ...
    # "rae_l2" / "rae_gp" (kind="rae"; Ghosh et al. 2020, eq. 11): ||x - g(z)||^2
    # (summed over pixels) + code_penalty ||z||^2 / 2 per example, z = f(x), + ...
    config.objective.code_penalty = 1e-4  # beta, weight of ||z||^2 / 2 (MNIST: 1e-4)
    # lambda of "rae_l2": + lambda sum ||W||^2 over the decoder's kernels, once per batch
    config.objective.decoder_weight_decay = 1e-7  # (MNIST: 1e-7)
    # gamma of "rae_gp": + gamma ||dg/dz (f(x))||_F^2 per example (MNIST: 0.5e-7)
    config.objective.gradient_penalty = 5e-8
    # 0: ||dg/dz||_F^2 exactly (K forward-mode products per example); m > 0: its
    # unbiased Hutchinson estimate from m Rademacher probes (m products)
    config.objective.gradient_penalty_probes = 0
    # "vq" (kind="vqvae"; van den Oord et al. 2017, eq. 3): ||x - g(z_q)||^2 (summed
    # over pixels) + ||sg[z_e] - e||^2 + commitment ||z_e - sg[e]||^2, summed over N
    config.objective.commitment = 0.25  # beta of the commitment term (paper: 0.25)
    # "gradient": the codebook term above trains e | "ema": e_j = m_j / N_j, moving
    # averages of the code vectors assigned to e_j and of their count (App. A.1)
    config.objective.codebook_update = "gradient"
    config.objective.ema_decay = 0.99  # gamma of the "ema" codebook (paper: 0.99)
    # "beta_tcvae" (kind="vae"; Chen et al. 2018): -ELBO + (tc_beta - 1) TC_hat, TC_hat
    # the minibatch-weighted-sampling estimate of KL(q(z) || prod_j q(z_j)) (tc.py)
    config.objective.tc_beta = 1.0  # beta, weight of the total correlation; 1 = ELBO
    config.objective.tc_dataset_size = 0  # N ("stratified" only); 0 = training set size
    config.objective.tc_estimator = "mws"  # "mws" (App. C.1) | "stratified"

    config.data = ml_collections.ConfigDict()
    # digits | mnist | fashion_mnist | frey_faces | binarized_mnist | synthetic;
    # series (T,): synthetic_series | gunpoint | italy_power_demand | arrowhead
    config.data.name = "digits"
    config.data.data_dir = (
        ""  # "" = $VAE_JAX_DATA, then ../shared/data, then the user cache
    )
    config.data.binarize = (
        "none"  # "none" | "dynamic" (fresh Bernoulli sample each step)
    )
    config.data.valid_size = -1  # -1 = the dataset's default validation split
    config.data.download = False  # fetch missing files (needs internet; checksummed)
    config.data.center = (
        False  # subtract the training mean from every split (linear AE = PCA)
    )

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "adam"  # "adam" | "adamw" | "sgd"
    config.optim.learning_rate = 1e-3
    config.optim.schedule = (
        "constant"  # "constant" | "cosine" | "warmup_cosine" | "burda"
    )
    config.optim.warmup_steps = 0
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.eps = 1e-8
    config.optim.momentum = 0.9  # sgd only
    config.optim.weight_decay = 0.0  # adamw only
    config.optim.grad_clip_norm = 0.0  # global-norm clipping; 0 = off
    # True: g / (||g||_2 + 1e-7) for each parameter tensor apart, before the optimizer
    # (with "adam": AdamNormGrad of Tomczak & Welling 2018); needs grad_clip_norm = 0
    config.optim.normalize_gradients = False

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 64  # B
    config.train.num_epochs = (
        30  # passes over the training set (ignored if num_steps > 0)
    )
    config.train.num_steps = 0  # total optimizer steps; 0 = from num_epochs
    config.train.steps_per_dispatch = 100  # steps fused into one XLA call by lax.scan
    config.train.log_every = 100  # steps between progress lines / metrics
    config.train.eval_every = 0  # steps between evaluations (valid split); 0 = end only
    # True: evaluate the test split every eval_every steps too (the test split is
    # otherwise evaluated once, at the end: select models on the validation split)
    config.train.eval_test_during_training = False
    # > 0: stop once the validation loss has not improved for this many evaluations
    # (after early_stopping_start steps) and finish with the best parameters
    # (``vae_jax.early_stopping``); needs eval_every > 0 and a validation split
    config.train.early_stopping_patience = 0
    config.train.early_stopping_start = 0  # e.g. the end of a KL warm-up
    config.train.checkpoint_every = 1000  # steps between checkpoints (and at the end)
    config.train.keep_checkpoints = 3  # last N checkpoints kept
    config.train.eval_batch_size = 500
    config.train.data_parallel = (
        "auto"  # "auto" (shard batches if >1 device) | "on" | "off"
    )
    config.train.on_nonfinite = (
        "stop"  # "stop" | "skip" the update of a non-finite step
    )
    # "skip": stop once more than this fraction of the steps run were skipped
    config.train.max_skipped_fraction = 0.01
    config.train.write_figures = True  # curves, reconstructions, samples (PNG)
    return config
