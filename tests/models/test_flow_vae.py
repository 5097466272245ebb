"""The planar-flow VAE (vae_jax.models.flow_vae): log q(z_L|x) and the log-weights
against a NumPy float64 change of variables from the same draws, the stop-gradient
density's gradient against a dense J^-T, the gap to p(z|x) on the linear-Gaussian
model against the best diagonal Gaussian's, and a run of its MNIST config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from vae_jax import config_checks, data, loop, models, objectives, runs
from vae_jax import linear_gaussian as lg
from vae_jax.models import flow_vae
from vae_jax.studies import theory

from helpers import make_config, model_config, tiny_model

SHAPE, K, L, S = (2, 3), 3, 4, 64
FLOW = {"kind": "flow_vae", "hidden": (16,), "latent_dim": K, "flow_length": L}


@pytest.fixture(scope="module")
def tiny():
    """(model, params, x [D]) of a Bernoulli flow VAE on 2x3 images."""
    model, params = tiny_model(SHAPE, **FLOW)
    x = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], np.float32)
    return model, params, x


def _np_flow(z, u, w, b):
    """z_L and sum_l log|det J_l| in float64, J_l = I + u_hat psi^T formed densely,
    u_hat as printed in Rezende & Mohamed 2015, App. A. z: [K]; u, w: [L, K]; b: [L]."""
    log_det = 0.0
    for u_l, w_l, b_l in zip(u, w, b):
        a = w_l @ u_l
        u_hat = u_l + (-1.0 + np.log1p(np.exp(a)) - a) * w_l / (w_l @ w_l)
        t = np.tanh(w_l @ z + b_l)
        log_det += np.linalg.slogdet(
            np.eye(len(z)) + np.outer(u_hat, (1 - t**2) * w_l)
        )[1]
        z = z + u_hat * t
    return z, log_det


def _reference(model, params, x, key):
    """(z_L [S, K], log q(z_L|x) [S], log p(z_L) [S]) by the change of variables,
    eps ~ N(0, I) drawn from ``key`` as ``dist.sample_diag_normal_and_eps`` draws it."""
    mean, logvar, u, w, b = (
        np.asarray(a, np.float64) for a in model.apply(params, x, method="encode")
    )
    eps = np.asarray(jax.random.normal(key, (S, K)), np.float64)
    std = np.exp(0.5 * logvar)
    z0 = mean + std * eps
    log_q0 = scipy.stats.norm.logpdf(z0, mean, std).sum(-1)
    z, log_det = zip(*(_np_flow(z, u, w, b) for z in z0))
    z = np.stack(z)
    return z, log_q0 - np.array(log_det), scipy.stats.norm.logpdf(z).sum(-1)


def test_log_q_is_the_change_of_variables(tiny):
    model, params, x = tiny
    key = jax.random.key(1)
    z, log_q = jax.jit(model.sample_and_log_q, static_argnums=3)(params, x, key, S)
    z_ref, log_q_ref, _ = _reference(model, params, x, key)
    np.testing.assert_allclose(z, z_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_q, log_q_ref, rtol=1e-5, atol=1e-4)


def test_log_weights_and_elbo_terms_from_the_same_draws(tiny):
    model, params, x = tiny
    key = jax.random.key(2)
    log_weights = jax.jit(model.log_weights, static_argnums=(3, 4))
    log_w, log_px = log_weights(params, x, key, S)
    z_ref, log_q_ref, log_pz_ref = _reference(model, params, x, key)
    logits = np.asarray(
        model.apply(params, jnp.asarray(z_ref), method="decode")["logits"]
    )
    log_px_ref = scipy.stats.bernoulli.logpmf(x[None], 1 / (1 + np.exp(-logits))).sum(
        -1
    )
    np.testing.assert_allclose(log_px, log_px_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        log_w, log_px_ref + log_pz_ref - log_q_ref, rtol=1e-5, atol=1e-4
    )
    recon, kl = jax.jit(model.elbo_terms, static_argnums=3)(params, x, key, S)
    np.testing.assert_allclose(recon, -log_px_ref.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        kl, np.mean(log_q_ref - log_pz_ref), rtol=1e-4, atol=1e-5
    )
    stopped = log_weights(params, x, key, S, True)  # stop_q_grad
    np.testing.assert_allclose(stopped[0], log_w, rtol=1e-6)  # values unchanged
    np.testing.assert_allclose(stopped[1], log_px, rtol=1e-6)


def _dense_score(model, params, x, key):
    """grad_{z_L} log q(z_L|x) at the S draws, q's parameters fixed: J^-T grad_{z_0}
    of log q_0(z_0) - sum_l log|det J_l| with dense Jacobians (jacfwd, slogdet)."""
    mean, logvar, u, w, b = model.apply(params, x, method="encode")
    eps = jax.random.normal(key, (S, K))
    z0 = mean[None] + jnp.exp(0.5 * logvar)[None] * eps

    def forward(z):  # the flow, step by step; (z_L, log q(z_L) at z_0 = z)
        log_q = jnp.sum(jax.scipy.stats.norm.logpdf(z, mean, jnp.exp(0.5 * logvar)))
        for u_l, w_l, b_l in zip(u, w, b):
            a = w_l @ u_l
            u_hat = u_l + (-1.0 + jnp.log1p(jnp.exp(a)) - a) * w_l / (w_l @ w_l)
            step = lambda z, u_hat=u_hat, w_l=w_l, b_l=b_l: (
                z + u_hat * jnp.tanh(w_l @ z + b_l)
            )
            log_q -= jnp.linalg.slogdet(jax.jacfwd(step)(z))[1]
            z = step(z)
        return z, log_q

    def score(z):
        jac = jax.jacfwd(lambda z: forward(z)[0])(z)
        return jnp.linalg.solve(jac.T, jax.grad(lambda z: forward(z)[1])(z))

    return jax.vmap(score)(z0)  # [S, K]


def test_stop_q_grad_gradient_is_the_path_term(tiny):
    """d/dphi sum_s [log p(x, z_s) - log q(z_s; sg(phi))] = sum_s (grad_z log p(x, z_s)
    - grad_z log q(z_s))^T dz_s/dphi (Tucker et al. 2019, eq. 5-6)."""
    model, params, x = tiny
    key = jax.random.key(3)
    score = jax.jit(_dense_score, static_argnums=0)(model, params, x, key)  # [S, K]

    def expected(params):
        z = model.sample_and_log_q(params, x, key, S)[0]  # the path z_s(phi)
        log_pz = jax.vmap(jax.scipy.stats.norm.logpdf)(z).sum(-1)
        return jnp.sum(model.log_px(params, x, z) + log_pz - jnp.sum(score * z, -1))

    stopped = lambda p: jnp.sum(model.log_weights(p, x, key, S, stop_q_grad=True)[0])
    full = lambda p: jnp.sum(model.log_weights(p, x, key, S)[0])
    grads = [jax.jit(jax.grad(f))(params)["params"] for f in (stopped, expected, full)]
    for name in ("encoder", "to_mean", "to_logvar", "to_flow", "decoder"):
        for a, b in zip(
            jax.tree.leaves(grads[0][name]), jax.tree.leaves(grads[1][name])
        ):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * np.abs(b).max())
    flow_stopped, flow_full = (
        grads[0]["to_flow"]["kernel"],
        grads[2]["to_flow"]["kernel"],
    )
    assert np.abs(flow_stopped - flow_full).max() > 0.1 * np.abs(flow_full).max()


def test_code_is_the_flow_of_q0s_mean(tiny):
    model, params, _ = tiny
    xs = np.asarray(jax.random.bernoulli(jax.random.key(4), 0.5, (5, 6)), np.float32)
    codes = model.code(params, xs)  # [B, K]
    mean, _, u, w, b = (
        np.asarray(a, np.float64) for a in model.apply(params, xs, method="encode")
    )
    expected = np.stack([_np_flow(*args)[0] for args in zip(mean, u, w, b)])
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(codes - mean).max() > 1e-2  # the flow moved it
    np.testing.assert_allclose(model.code(params, xs[0]), codes[0], rtol=1e-6)
    (means,) = model.posterior_means(params, xs[0], jax.random.key(0))
    np.testing.assert_allclose(means, codes[0], rtol=1e-6)
    assert model.kl_per_dimension(params, xs) is None
    assert model.sample_latents(params, jax.random.key(0), 7).shape == (7, K)


def test_flow_length_is_checked_and_its_parameters_counted():
    _, params = tiny_model(SHAPE, **FLOW)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert config_checks.estimate_parameters(model_config(**FLOW), SHAPE) == count
    bad = model_config(**{**FLOW, "flow_length": 0})
    with pytest.raises(ValueError, match="flow_length=0 must be a positive integer"):
        models.build_model(bad, likelihood="bernoulli", image_shape=SHAPE)
    with pytest.raises(ValueError, match=r"model.flow_length=0 must be > 0"):
        config_checks.validate_config(make_config(model={**FLOW, "flow_length": 0}))


# ------------------------------------------------- linear-Gaussian model: the gap
# p(z) = N(0, I_2), p(x|z) = N(W z + b, 0.5^2 I_3): Corr[z_1, z_2 | x] = -0.88, so no
# diagonal Gaussian reaches p(z|x): its best gap is 0.757 nats for every x.
W = np.array([[1.0, 0.9], [0.9, 1.0], [0.5, 0.4]], np.float32)
B = np.array([0.1, -0.2, 0.3], np.float32)
LOG_S = np.float32(np.log(0.5))


def _linear_flow_vae(flow_length, hidden=()):
    """(model, params, merge): a flow VAE with decoder p(x|z) = N(W z + b, s^2 I) and an
    MLP(hidden) encoder; merge(encoder_params) adds the fixed decoder."""
    encoder = models.MLP(hidden, "tanh")
    model = flow_vae.FlowVAE(
        encoder,
        models.MLP((), output_dim=3),
        2,
        "gaussian",
        0.5,
        flow_length=flow_length,
    )
    params = model.init(jax.random.key(0), jnp.zeros(3))["params"]
    decoder = {"output": {"kernel": jnp.asarray(W.T), "bias": jnp.asarray(B)}}
    encoder_params = {n: v for n, v in params.items() if n != "decoder"}
    return model, encoder_params, lambda e: {"params": {**e, "decoder": decoder}}


def _train(loss, encoder_params, batches, num_steps, learning_rate):
    """Adam (cosine decay) on the encoder; loss(params, xs, key) -> scalar;
    batches(i) -> xs [B, 3]."""
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps))

    def step(carry, i):
        enc, opt = carry
        key = jax.random.fold_in(jax.random.key(1), i)
        grads = jax.grad(loss)(enc, batches(i), key)
        updates, opt = tx.update(grads, opt)
        return (optax.apply_updates(enc, updates), opt), None

    run = jax.jit(lambda c: jax.lax.scan(step, c, jnp.arange(num_steps))[0])
    return run((encoder_params, tx.init(encoder_params)))[0]


def _gaps(model, params, xs, num_samples):
    """log p(x) - ELBO(x) (ELBO: mean of ``num_samples`` log-weights) for xs [N, 3],
    and the standard error of their mean."""
    keys = jax.random.split(jax.random.key(9), len(xs))
    log_w = jax.jit(
        jax.vmap(lambda x, k: model.log_weights(params, x, k, num_samples)[0])
    )(xs, keys)  # [N, num_samples]
    log_px = jax.vmap(lg.log_marginal, (0, None, None, None))(xs, W, B, LOG_S)
    gaps = np.asarray(log_px - log_w.mean(1), np.float64)
    stderr = np.sqrt(np.mean(np.var(log_w, 1)) / num_samples / len(xs))
    return gaps, stderr


def _floor(x):
    return float(theory.diagonal_gap_floor(jnp.asarray(x), W, B, LOG_S))


def test_flow_gap_to_the_posterior_beats_the_best_diagonal_gaussian_one_x():
    """One x, q optimised for it (4 planar steps): KL(q || p(z|x)) = log p(x) - ELBO
    from 200,000 draws ends far below the 0.757-nat floor of every diagonal q, and
    >= 0 (the ELBO is a bound only if log q is the true density)."""
    x = np.array([0.8, 0.5, -0.3], np.float32)
    model, enc, merge = _linear_flow_vae(flow_length=4)
    loss_one = objectives.negative_elbo_for(model, 8)
    loss = lambda e, xs, key: loss_one(merge(e), xs[0], key, {"beta": 1.0})[0]
    enc = _train(loss, enc, lambda i: jnp.asarray(x)[None], 500, 2e-2)
    (gap,), stderr = _gaps(model, merge(enc), x[None], 200_000)
    floor = _floor(x)
    print(f"one x: flow gap {gap:.4f} +- {stderr:.4f}, diagonal floor {floor:.4f}")
    assert floor > 0.7
    assert -4 * stderr < gap < 0.1 * floor


@pytest.mark.slow  # ~45 s on two CPU cores
def test_amortised_flow_gap_beats_the_best_diagonal_gaussian():
    """q(z|x) amortised over 2,000 x from the model (MLP(32) encoder, L = 8, decoder
    fixed to the truth): the mean gap over 200 held-out x is below the diagonal
    floor (it is the same for every x)."""

    def draw(key, n):
        kz, kx = jax.random.split(key)
        z = jax.random.normal(kz, (n, 2))
        return z @ W.T + B[None] + 0.5 * jax.random.normal(kx, (n, 3))

    x_train, x_eval = draw(jax.random.key(5), 2000), draw(jax.random.key(6), 200)
    model, enc, merge = _linear_flow_vae(flow_length=8, hidden=(32,))
    batch_loss = objectives.batch_mean(objectives.negative_elbo_for(model, 4))
    loss = lambda e, xs, key: batch_loss(merge(e), xs, key, {"beta": 1.0})[0]
    batches = lambda i: x_train[
        jax.random.randint(jax.random.fold_in(jax.random.key(7), i), (100,), 0, 2000)
    ]
    enc = _train(loss, enc, batches, 3000, 1e-2)
    gaps, stderr = _gaps(model, merge(enc), np.asarray(x_eval), 5000)
    floor = _floor(x_eval[0])
    print(
        f"amortised: mean flow gap {gaps.mean():.4f} +- {stderr:.4f}, floor {floor:.4f}"
    )
    assert -4 * stderr < gaps.mean() < 0.5 * floor


# ------------------------------------------------------------------ the runner
@pytest.mark.slow  # compiles a run: ~15 s on 2 CPU cores (digits), more on MNIST
@pytest.mark.parametrize("dataset", ["digits", "mnist"])
def test_config_trains_and_loads(tmp_path, dataset):
    """flow_vae_mnist.py (shrunk: 32 hidden units, K = 4, L = 2; on the bundled 8x8
    digits, or on MNIST as shipped), 5 steps, then ``load_run``: samples, codes,
    per-example ELBO and L_k."""
    config = make_config(
        "flow_vae_mnist",
        model={"hidden": (32,), "latent_dim": 4, "flow_length": 2},
        train={
            "num_steps": 5,
            "steps_per_dispatch": 5,
            "log_every": 5,
            "checkpoint_every": 5,
            "eval_batch_size": 2000,
            "write_figures": False,
        },
    )
    config.data.name = dataset
    assert config.model.kind == "flow_vae" and config.data.binarize == "dynamic"
    try:
        final = loop.train_and_evaluate(config, str(tmp_path))
    except data.DataNotFoundError:
        pytest.skip(f"{dataset} files not found")
    assert np.isfinite(final["test/elbo"])
    run = runs.load_run(tmp_path)
    assert run.family == "flow_vae" and run.step == 5
    dim = run.dataset.dim
    assert run.sample(3, jax.random.key(0)).shape == (3, dim)
    x = run.eval_split("test")[:8]
    elbo = run.elbo(x, num_samples=10)
    ll = run.log_likelihood(x, 50)
    assert elbo.shape == ll.shape == (8,) and np.all(elbo < 0)
    assert np.mean(ll) > np.mean(elbo) - 1.0  # E L_50 >= ELBO
    assert run.encode(x).shape == (8, 4)
    with pytest.raises(NotImplementedError, match="posterior_logvar"):
        run.posterior_logvar(x)
