"""The VampPrior VAE (Tomczak & Welling 2018) against independent computations.

log p(z) against a float64 SciPy logsumexp over the pseudo-inputs' encoder outputs; the
sampled KL with one pseudo-input against the closed-form KL of two Gaussians; the
log-weights term by term in float64 (``log_weight_reference``) and their
``stop_q_grad`` gradients; mixture samples' shares, means and variances; a short run
through the runner, ``load_run`` and a process-mode sweep over the number of
pseudo-inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from vae_jax import config_checks, loop, runs
from vae_jax.sweep import launch, spec

import log_weight_reference as ref
from helpers import make_config, model_config, tiny_model

SHAPE, K, C = (3, 4), 3, 7  # D = 12


def _with(params, **leaves):
    """``params`` with top-level leaves/subtrees of ``params["params"]`` replaced."""
    return {**params, "params": {**params["params"], **leaves}}


def _vamp(num_pseudo_inputs=C, seed=0):
    """(model, params): a 12-(9,)-3 VampPrior VAE whose pseudo-input layer W is drawn
    from U(-0.3, 1.3) (some entries clipped by the hardtanh) and whose log-variance head
    is scaled up, so components differ in mean and scale (logvar from -5 to 2)."""
    model, params = tiny_model(
        SHAPE,
        seed=seed,
        kind="vamp_vae",
        hidden=(9,),
        latent_dim=K,
        num_pseudo_inputs=num_pseudo_inputs,
    )
    key_w, key_v = jax.random.split(jax.random.key(seed + 100))
    w = jax.random.uniform(key_w, (num_pseudo_inputs, 12), minval=-0.3, maxval=1.3)
    head = params["params"]["to_logvar"]
    kernel = 3.0 * jax.random.normal(key_v, head["kernel"].shape)
    return model, _with(params, pseudo_inputs=w, to_logvar={**head, "kernel": kernel})


def components64(model, params):
    """(means, logvars) [C, K] float64: the encoder at u = clip(W, 0, 1) (NumPy)."""
    u = np.clip(ref.f64(params["params"]["pseudo_inputs"]), 0.0, 1.0)
    mean, logvar = model.apply(params, jnp.asarray(u, jnp.float32), method="encode")
    return ref.f64(mean), ref.f64(logvar)


def mixture_logpdf64(z, means, logvars):
    """log (1/C) sum_c N(z; means_c, diag(exp(logvars_c))), float64: z [N, K] -> [N]."""
    per_component = ref.normal_logpdf(z[:, None, :], means[None], logvars[None])
    return logsumexp(per_component, axis=1) - np.log(means.shape[0])


def _bits(seed, d=12):
    return (jax.random.uniform(jax.random.key(seed), (d,)) > 0.5).astype(jnp.float32)


# ------------------------------------------------------------------- the prior
def test_log_prior_matches_float64_logsumexp_even_far_from_every_component():
    """Near and far z (up to |z| = 60, where every component's density underflows
    float32: a naive log mean exp gives -inf there)."""
    model, params = _vamp()
    means, logvars = components64(model, params)
    near = 2.0 * np.asarray(jax.random.normal(jax.random.key(3), (20, K)))
    far = np.array([[40.0, 40.0, 40.0], [-60.0, 0.0, 5.0], [0.0, 30.0, -30.0]])
    z = np.concatenate([near, far])
    got = jax.jit(model.log_prior)(params, jnp.asarray(z, jnp.float32))
    want = mixture_logpdf64(z, means, logvars)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    far_components = np.float32(ref.normal_logpdf(far[:, None], means[None], logvars))
    with np.errstate(divide="ignore"):
        naive32 = np.log(np.mean(np.exp(far_components), axis=1))
    assert np.all(np.isneginf(naive32))  # the far points do test the logsumexp


def test_pseudo_inputs_initialised_as_the_authors_and_counted():
    """W ~ N(0.05, 0.01^2) of shape [C, D] = [500, 784] (jmtomczak/vae_vampprior's MNIST
    setting), and ``config_checks.estimate_parameters`` counts the C D of them."""
    fields = {"kind": "vamp_vae", "hidden": (8,), "latent_dim": 2}
    _, params = tiny_model((28, 28), **fields)
    w = ref.f64(params["params"]["pseudo_inputs"])
    assert w.shape == (500, 784)
    se = 0.01 / np.sqrt(w.size)
    assert abs(w.mean() - 0.05) < 5 * se
    assert abs(w.std() - 0.01) < 5 * 0.01 / np.sqrt(2 * w.size)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert config_checks.estimate_parameters(model_config(**fields), (28, 28)) == count


def test_one_pseudo_input_gives_the_closed_form_kl_on_average():
    """C = 1: p(z) = q(z|u_1), so the sampled KL of ``elbo_terms`` averages to
    KL(N(m_x, v_x) || N(m_u, v_u)) = 1/2 sum(v_x/v_u + (m_u - m_x)^2/v_u - 1 +
    log v_u - log v_x), within 4 standard errors of 40,000 single draws."""
    model, params = _vamp(num_pseudo_inputs=1)
    x = _bits(4)
    m_u, lv_u = (a[0] for a in components64(model, params))
    m_x, lv_x = map(ref.f64, model.apply(params, x, method="encode"))
    closed = 0.5 * np.sum(
        np.exp(lv_x - lv_u) + (m_u - m_x) ** 2 * np.exp(-lv_u) - 1 + lv_u - lv_x
    )
    keys = jax.random.split(jax.random.key(5), 40_000)
    terms = jax.jit(jax.vmap(model.elbo_terms, in_axes=(None, None, 0)))
    kl = ref.f64(terms(params, x, keys)[1])  # [N], one draw each
    se = kl.std() / np.sqrt(kl.size)
    assert closed > 1.0 and se < 0.02  # a KL of nats, resolved to ~1%
    assert abs(kl.mean() - closed) < 4 * se, (kl.mean(), closed, se)


# ------------------------------------------------------------ the log-weights
def _terms64(model, params, x, key, num_samples):
    """``ref.vae_terms`` with log p(z) the float64 mixture: {"log_px", "log_pz",
    "log_qz", "log_w"} [S]."""
    terms = ref.vae_terms(model, params, x, key, num_samples)
    terms["log_pz"] = mixture_logpdf64(terms["z"], *components64(model, params))
    terms["log_w"] = terms["log_px"] + terms["log_pz"] - terms["log_qz"]
    return terms


def test_log_weights_and_elbo_terms_equal_float64_terms_of_the_same_draws():
    model, params = _vamp()
    x, key, num = _bits(6), jax.random.key(7), 32
    want = _terms64(model, params, x, key, num)
    assert np.abs(want["log_pz"] + ref.normal_logpdf(want["z"])).min() > 0.05
    weights = jax.jit(model.log_weights, static_argnums=(3, 4))
    log_w, log_px = weights(params, x, key, num, False)
    np.testing.assert_allclose(log_px, want["log_px"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_w, want["log_w"], rtol=1e-5, atol=1e-4)
    stopped = weights(params, x, key, num, True)
    np.testing.assert_array_equal(stopped[0], log_w)  # values unchanged
    np.testing.assert_array_equal(stopped[1], log_px)
    recon, kl = model.elbo_terms(params, x, key, num)
    np.testing.assert_allclose(recon, -want["log_px"].mean(), rtol=1e-5)
    np.testing.assert_allclose(
        kl, (want["log_qz"] - want["log_pz"]).mean(), rtol=1e-4, atol=1e-4
    )


def test_stop_q_grad_removes_exactly_the_score_term():
    """grad log w - grad log w(stop_q_grad) = -d/dphi log q(z|x) at z held fixed (the
    score term, Tucker et al. 2019, eq. 5-6); the decoder's and the pseudo-inputs'
    gradients are the same either way."""
    model, params = _vamp()
    x, key, num = _bits(8), jax.random.key(9), 8

    def total(p, stop):
        return jnp.sum(model.log_weights(p, x, key, num, stop_q_grad=stop)[0])

    grad = jax.jit(jax.grad(total), static_argnums=1)
    full, stopped = grad(params, False), grad(params, True)
    mean, logvar = model.apply(params, x, method="encode")
    eps = jax.random.normal(key, (num, K))
    z = jax.lax.stop_gradient(mean[None] + jnp.exp(0.5 * logvar)[None] * eps)

    def log_q(p):  # sum_s log N(z_s; mean(x), diag(exp(logvar(x)))), z fixed
        m, lv = model.apply(p, x, method="encode")
        sq = jnp.square(z - m[None]) * jnp.exp(-lv)[None]
        return -0.5 * jnp.sum(sq + lv[None] + jnp.log(2 * jnp.pi))

    score = jax.jit(jax.grad(log_q))(params)
    diff = jax.tree.map(lambda a, b: a - b, full, stopped)
    flat_diff, flat_score = (
        jax.tree.leaves(t) for t in (diff, jax.tree.map(jnp.negative, score))
    )
    for got, want in zip(flat_diff, flat_score, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.abs(ref.f64(score["params"]["to_mean"]["bias"])).max() > 0.1
    for name in ("decoder", "pseudo_inputs"):
        for a, b in zip(
            jax.tree.leaves(full["params"][name]),
            jax.tree.leaves(stopped["params"][name]),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------- sampling
def test_sample_latents_draws_from_the_mixture():
    """Three components 20 apart with scales 0.5 sqrt(e^a), a = (0, 1, -1) in their own
    dim: the share of samples nearest each mean is 1/3, each cluster's mean and
    variance are its component's, and the overall mean and variance the mixture's, all
    within 4 standard errors of 30,000 draws."""
    model, params = tiny_model(
        (3,),
        kind="vamp_vae",
        architecture="linear",
        hidden=(),
        latent_dim=3,
        num_pseudo_inputs=3,
    )  # linear encoder: mean(u) = A u + a, logvar(u) = B u + b
    a = np.array([0.0, 1.0, -1.0])
    params = _with(
        params,
        pseudo_inputs=jnp.eye(3),  # u_c = e_c
        to_mean={"kernel": 20.0 * jnp.eye(3), "bias": jnp.zeros(3)},
        to_logvar={"kernel": jnp.diag(a), "bias": jnp.full(3, np.log(0.25))},
    )
    means = 20.0 * np.eye(3)  # [C, K]
    variances = 0.25 * np.exp(
        np.diag(a)
    )  # [C, K]: component c's scale differs in dim c
    n = 30_000
    z = ref.f64(
        jax.jit(model.sample_latents, static_argnums=2)(params, jax.random.key(11), n)
    )
    assert z.shape == (n, 3)
    nearest = np.argmin(((z[:, None] - means[None]) ** 2).sum(-1), axis=1)
    for c in range(3):
        share, zc = np.mean(nearest == c), z[nearest == c]
        assert abs(share - 1 / 3) < 4 * np.sqrt((2 / 9) / n)
        se_mean = np.sqrt(variances[c] / len(zc))
        assert np.all(np.abs(zc.mean(0) - means[c]) < 4 * se_mean)
        se_var = variances[c] * np.sqrt(2.0 / (len(zc) - 1))
        assert np.all(np.abs(zc.var(0, ddof=1) - variances[c]) < 4 * se_var)
    mix_mean = means.mean(0)
    mix_var = (variances + means**2).mean(0) - mix_mean**2
    assert np.all(np.abs(z.mean(0) - mix_mean) < 4 * np.sqrt(mix_var / n))
    se_var = ((z - z.mean(0)) ** 2).std(0) / np.sqrt(n)
    assert np.all(np.abs(z.var(0) - mix_var) < 4 * se_var)


# --------------------------------------------------- config, runner and sweeps
def test_config_matches_vae_mnist_but_the_prior_and_checks_the_count():
    vamp, plain = make_config("vamp_mnist"), make_config("vae_mnist")
    diff = {k for k, v in spec.flatten(vamp).items() if spec.flatten(plain)[k] != v}
    assert diff == {"model.kind"} and vamp.model.num_pseudo_inputs == 500
    config_checks.validate_config(vamp)
    vamp.model.num_pseudo_inputs = 0
    with pytest.raises(ValueError, match="num_pseudo_inputs=0 must be > 0"):
        config_checks.validate_config(vamp)


def _tiny_vamp_config(num_steps=10, **model):
    """``vamp_mnist`` on digits (8 x 8), a (32,)-4 MLP, C = 10: ``num_steps`` steps."""
    config = make_config(
        "vamp_mnist",
        model={"hidden": (32,), "latent_dim": 4, "num_pseudo_inputs": 10, **model},
        data={"name": "digits"},
    )
    chunk = min(num_steps, 100)
    config.train.update(
        num_steps=num_steps,
        batch_size=32,
        steps_per_dispatch=chunk,
        log_every=chunk,
        checkpoint_every=num_steps,
        eval_batch_size=200,
        write_figures=False,
    )
    return config


@pytest.mark.slow  # 300 steps and L_10000: ~20 s on 2 CPU cores
def test_runner_trains_and_load_run_scores_with_the_mixture_prior(tmp_path):
    """300 steps on digits; the loaded run samples and gives ELBOs, and its L_k
    (k = 10,000) matches a float64 L_k with the VampPrior on draws of its own to 0.06
    nats (their Monte-Carlo spread is ~0.01), while one with p(z) = N(0, I) on the same
    draws is > 1 nat away."""
    final = loop.train_and_evaluate(_tiny_vamp_config(300), str(tmp_path))
    assert np.isfinite(final["test/elbo"])
    run = runs.load_run(tmp_path)
    assert run.family == "vamp_vae"
    assert run.params["params"]["pseudo_inputs"].shape == (10, 64)
    samples = run.sample(6, jax.random.key(0))
    assert samples.shape == (6, 64) and np.all((samples >= 0) & (samples <= 1))
    x, k = run.eval_split("test")[:4], 10_000
    elbo = run.elbo(x, num_samples=100)
    ll = run.log_likelihood(x, k)
    assert elbo.shape == ll.shape == (4,) and np.all(ll > elbo)
    for i, xi in enumerate(x):
        t = _terms64(run.model, run.params, jnp.asarray(xi), jax.random.key(20 + i), k)
        mixture = logsumexp(t["log_w"]) - np.log(k)
        standard = t["log_w"] - t["log_pz"] + ref.normal_logpdf(t["z"])
        standard = logsumexp(standard) - np.log(k)
        assert abs(ll[i] - mixture) < 0.06 and abs(mixture - standard) > 1.0


def test_a_sweep_over_the_pseudo_input_count_is_refused_in_vmap_mode(tmp_path):
    """C is a shape: the configs cannot share one vmapped program."""
    sweep = [{"model.num_pseudo_inputs": 3}, {"model.num_pseudo_inputs": 5}]
    with pytest.raises(ValueError, match="model.num_pseudo_inputs"):
        launch.run_sweep(_tiny_vamp_config(5), sweep, tmp_path, mode="vmap")
    assert not list(tmp_path.iterdir())  # refused before anything trained


@pytest.mark.slow  # two runs, each compiling its own program
def test_a_process_sweep_over_the_pseudo_input_count_trains_both(tmp_path):
    sweep = [{"model.num_pseudo_inputs": 3}, {"model.num_pseudo_inputs": 5}]
    rows = launch.run_sweep(_tiny_vamp_config(5), sweep, tmp_path, mode="process")
    assert [r["model.num_pseudo_inputs"] for r in rows] == [3, 5]
    for row in rows:
        assert row["status"] == "done" and np.isfinite(row["test/elbo"])
        run = runs.load_run(tmp_path / row["name"])
        shape = run.params["params"]["pseudo_inputs"].shape
        assert shape == (row["model.num_pseudo_inputs"], 64)
