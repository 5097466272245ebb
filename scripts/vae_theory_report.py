"""The VAE theory made executable: five checks on trained models, one report.

  nice -n 10 python scripts/vae_theory_report.py --workdir ~/runs/theory [--scale 1]

1. score-function vs reparameterised gradient variance (MNIST VAE),
2. full-covariance vs diagonal posterior (MNIST: test ELBO, IW-NLL, correlations),
3. Gaussian likelihood = squared error with beta = 2 sigma^2 (Frey faces),
4. rate vs distortion over beta, KL per dim, active units with warm-up / free bits,
5. log p(x) = ELBO + KL(q || p(z|x)) while training an amortised encoder (exact).

Trains every model in memory and writes ``report.md`` (with its wall time),
``results.json`` and PNG figures into --workdir, rewriting them after each part.
``--scale`` multiplies every step count and evaluation size (0.05: a smoke run).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree

from vae_jax import data as data_lib
from vae_jax import evaluate, objectives, plots, runtime, writer
from vae_jax.configs import vae_frey, vae_mnist
from vae_jax.models import full_covariance
from vae_jax.studies import autoencoders, theory
from vae_jax.studies import gradient_estimators as ge
from vae_jax.sweep import launch

PARTS = ("gradients", "full_covariance", "gaussian_mse", "rate_distortion", "vi")
ESTIMATORS = ("reparameterised", "score_function", "score_function_loo")


def _n(value: float, scale: float, low: int) -> int:
    return max(low, int(value * scale))


def _mnist_config(steps: int, scale: float, **model):
    config = vae_mnist.get_config()
    config.model.update(**model)
    config.train.num_steps = _n(steps, scale, 50)
    return config


def _table(rows: list[dict]) -> str:
    """Markdown table of dicts with the same keys (the header); floats to .4g."""
    keys = list(rows[0])
    return writer.markdown_table(keys, [[r[k] for k in keys] for r in rows], ".4g")


def _figure(*shape, size):
    return plt.subplots(*shape, figsize=size, layout="constrained")


def _save(fig, path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------ 1. why reparameterise
def _variance_rows(exp, params, xs, repeats, sizes=(1, 4, 16, 64)) -> list[dict]:
    """tr Cov of each estimator's grad_phi, mean over xs, per S; ratio to reparam."""
    rows, key = [], jax.random.key(0)
    for name in ESTIMATORS:
        est = ge.get_estimator(name)
        fn = jax.jit(
            lambda p, x, k, s, est=est: ge.gradient_variance(
                est, p, x, k, s, repeats, model=exp.model
            )[0],
            static_argnums=3,
        )
        for s in sizes[1:] if name.endswith("loo") else sizes:
            keys = [jax.random.fold_in(key, i) for i in range(len(xs))]
            var = np.mean([float(fn(params, x, k, s)) for x, k in zip(xs, keys)])
            rows.append({"estimator": name, "S": s, "trace_cov": float(var)})
    ref = {r["S"]: r["trace_cov"] for r in rows if r["estimator"] == ESTIMATORS[0]}
    return [{**r, "ratio_to_reparam": r["trace_cov"] / ref[r["S"]]} for r in rows]


def gradients_part(ctx, workdir, scale):
    config = _mnist_config(3000, scale)
    exp, params, _ = autoencoders.fit(config, ctx["mnist"])
    xs = exp.eval_sets()["test"][: _n(8, min(scale, 1), 4)]
    repeats = _n(64, min(scale, 1), 16)
    rows = _variance_rows(exp, params, xs, repeats)
    fig, ax = _figure(size=(5.5, 4))
    for name in ESTIMATORS:
        pts = [(r["S"], r["trace_cov"]) for r in rows if r["estimator"] == name]
        ax.loglog(*zip(*pts), marker="o", label=name)
    ax.set(xlabel="samples S per estimate", ylabel="tr Cov[grad_phi] (sum over params)")
    ax.set_title("grad_phi E_q[log p(x|z)], MNIST VAE encoder", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, workdir / "gradient_variance.png")

    def ratio(name):
        values = [r["ratio_to_reparam"] for r in rows if r["estimator"] == name]
        return f"{min(values):.3g}x to {max(values):.3g}x"

    text = (
        f"MLP VAE 784-400-20 trained {config.train.num_steps} steps on MNIST. For "
        f"{len(xs)} test images, {repeats} independent estimates of grad_phi "
        "E_q[log p(x|z)] (all encoder parameters) per S; trace of their covariance, "
        "averaged over the images. Both estimators are unbiased (tests/test_theory.py). "
        "Measured variance ratio, score function / reparameterised, over S = 1..64: "
        f"{ratio('score_function')}; with a leave-one-out baseline: "
        f"{ratio('score_function_loo')}. Each falls as 1/S, so the ratio is the factor "
        "of extra samples the score-function estimator needs for the same variance."
    )
    md = ["## 1. Why reparameterise: gradient variance", text, _table(rows)]
    return {"rows": rows}, md + ["![gradient variance](gradient_variance.png)"]


# ---------------------------------------------------------- 2. full covariance
def _evaluate_vae(exp, params, x, scale) -> dict:
    """Test rate, distortion, ELBO (one z) and IW-NLL = -mean L_k over x: [N, D]."""
    key = jax.random.key(1)
    out = theory.rate_distortion(exp.model, params, x, key)
    out.pop("kl_per_dim", None)
    k, n = _n(500, scale, 50), _n(1000, scale, 200)
    ll_fn = evaluate.make_log_likelihood_fn(exp.model.log_weights, k)
    nll = evaluate.evaluate_log_likelihood(ll_fn, params, x[:n], 100, key, k)
    return {
        **out,
        "iw_nll": nll["nll"],
        "iw_nll_stderr": nll["nll_stderr"],
        "iw_k": k,
        "iw_images": n,
    }


def _correlation_figure(model, params, x, path) -> float:
    """Corr q(z|x) of 4 test images and the histogram of off-diagonal entries."""
    corr = np.asarray(full_covariance.posterior_correlations(model, params, x))
    off = corr[:, ~np.eye(corr.shape[-1], dtype=bool)]  # [N, K (K - 1)]
    fig, axes = _figure(1, 5, size=(17, 3.4))
    for i, ax in enumerate(axes[:4]):
        im = ax.imshow(corr[i], cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"Corr q(z|x), test image {i}", fontsize=9)
    fig.colorbar(im, ax=list(axes[:4]), shrink=0.8)
    axes[4].hist(off.ravel(), bins=60, density=True)
    axes[4].set_title(f"off-diagonal correlations, {len(x)} images", fontsize=9)
    _save(fig, path)
    return float(np.mean(np.abs(off)))


def full_covariance_part(ctx, workdir, scale):
    rows, res = [], {}
    for posterior in ("diagonal", "full"):
        config = _mnist_config(8000, scale, posterior=posterior)
        start = time.time()
        exp, params, _ = autoencoders.fit(config, ctx["mnist"])
        row = {"posterior": posterior, "steps": config.train.num_steps}
        row["train_s"] = time.time() - start
        x = exp.eval_sets()["test"][: _n(10000, scale, 1000)]
        rows.append({**row, **_evaluate_vae(exp, params, x, scale)})
    path = workdir / "posterior_correlations.png"
    res["mean_abs_corr"] = _correlation_figure(exp.model, params, x[:1000], path)
    text = (
        "Same MLP VAE 784-400-20, steps, seed and batches; the full model adds "
        "K(K-1)/2 = 190 encoder outputs (the strict lower triangle of L, zero-"
        "initialised, so it starts as the diagonal model); KL(q || p(z)) in closed form "
        "(Doersch 2016, eq. 7). Test ELBO (one z per image, nats) on the fixed "
        "binarization of the test set; IW-NLL = -mean L_k. train_s includes "
        "compilation. Mean |off-diagonal correlation| of the learned q: "
        f"{res['mean_abs_corr']:.3f}."
    )
    md = ["## 2. Full-covariance posterior q(z|x) = N(mean, L L^T)", text, _table(rows)]
    return {**res, "rows": rows}, md + ["![correlations](posterior_correlations.png)"]


# ---------------------------------------------------------- 3. Gaussian = MSE
def _frey_config(scale, sigma: float, beta: float = 1.0):
    config = vae_frey.get_config()
    config.objective.update(sigma=sigma, beta=beta)  # sigma 0: learned
    config.optim.learning_rate = 1e-3
    config.train.num_steps = _n(10000, scale, 100)
    return config


def _frey_row(label, exp, params, frey) -> dict:
    rd = theory.rate_distortion(exp.model, params, frey.test, jax.random.key(2))
    mse = lambda x: float(
        np.mean(
            np.square(
                x
                - autoencoders.apply_batched(
                    lambda xb: exp.model.reconstruct(params, xb), x
                )
            )
        )
    )
    sigma = exp.model.sigma or float(np.exp(params["params"]["log_sigma"]))
    return {
        "model": label,
        "sigma": sigma,
        "beta=2sigma^2": theory.beta_for_sigma(sigma),
        "test_elbo": rd["elbo"],
        "test_kl": rd["rate"],
        "train_mse_per_pixel": mse(frey.train),
        "test_mse_per_pixel": mse(frey.test),
    }


def _sigma_trend(rows, num_train: int) -> str:
    """What the fixed-sigma rows (ascending sigma) show about beta = 2 sigma^2."""
    values = lambda key: " / ".join(f"{r[key]:.4g}" for r in rows)
    ascending = lambda key: all(a[key] < b[key] for a, b in itertools.pairwise(rows))
    kl_falls = all(a["test_kl"] > b["test_kl"] for a, b in itertools.pairwise(rows))
    return (
        f"sigma = {values('sigma')}: test KL {values('test_kl')} nats "
        f"({'falls' if kl_falls else 'does not fall'} as beta grows); per-pixel MSE on "
        f"the {num_train} training faces {values('train_mse_per_pixel')} "
        f"({'rises' if ascending('train_mse_per_pixel') else 'does not rise'} with "
        f"beta), on test faces {values('test_mse_per_pixel')} "
        f"({'rises' if ascending('test_mse_per_pixel') else 'does not rise'})."
    )


def _squared_error_fit(frey, scale, sigma):
    """The squared-error beta-VAE, beta = 2 sigma^2, same init and batches."""
    config = _frey_config(scale, sigma, beta=theory.beta_for_sigma(sigma))
    make = lambda m: functools.partial(theory.negative_elbo_squared_error, model=m)
    return autoencoders.fit(config, frey, make)


def _identity_error(model, params, x, sigma) -> float:
    """max |2 sigma^2 (-ELBO) - (SSE + 2 sigma^2 KL + const)| / |lhs| over x, same z."""
    beta, key = theory.beta_for_sigma(sigma), jax.random.key(3)
    gauss = objectives.per_example(objectives.negative_elbo_for(model))
    mse = objectives.per_example(
        functools.partial(theory.negative_elbo_squared_error, model=model)
    )
    lhs = beta * gauss(params, x, key, {"beta": 1.0})[0]
    rhs = mse(params, x, key, {"beta": beta})[0] + theory.gaussian_constant(
        sigma, x.shape[1]
    )
    return float(jnp.max(jnp.abs(lhs - rhs) / jnp.abs(lhs)))


def gaussian_mse_part(ctx, workdir, scale):
    frey, rows, fits = ctx["frey"], [], {}
    for sigma in (0.05, 0.1, 0.2, 0.0):
        fits[sigma] = autoencoders.fit(_frey_config(scale, sigma), frey)[:2]
        rows.append(
            _frey_row(f"gaussian sigma={sigma or 'learned'}", *fits[sigma], frey)
        )
    exp, params, _ = _squared_error_fit(frey, scale, 0.1)
    rows.append(_frey_row("squared error, beta=0.02", exp, params, frey))
    flat = lambda p: ravel_pytree(p)[0]
    gauss_params = fits[0.1][1]
    rel = float(jnp.linalg.norm(flat(params) - flat(gauss_params)))
    rel /= float(jnp.linalg.norm(flat(gauss_params)))
    err = _identity_error(exp.model, gauss_params, jnp.asarray(frey.test[:256]), 0.1)
    recons = [e.model.reconstruct(p, frey.test[:10]) for e, p in fits.values()]
    grid = np.concatenate([frey.test[:10], *map(np.asarray, recons)])
    plots.image_grid(
        grid.reshape(-1, *frey.image_shape),
        workdir / "frey_sigma.png",
        num_columns=10,
        title="test faces; sigma = 0.05, 0.1, 0.2, learned",
    )
    text = (
        "2 sigma^2 (-ELBO_sigma) = ||x - g(z)||^2 + 2 sigma^2 KL + 2 sigma^2 (D log "
        "sigma + D/2 log 2 pi): on 256 test faces with the sigma = 0.1 model and the "
        f"same z, max relative difference of the two sides {err:.2g}. Trained from the "
        f"same init and batches (Adam, {exp.total_steps} steps), the squared-error "
        f"beta-VAE ends at relative parameter distance {rel:.3g} from the Gaussian one "
        "(Adam is invariant to the loss scale up to eps). "
        + _sigma_trend(rows[:3], len(frey.train))
        + " Test ELBO in nats per face (a density of [0, 1] pixels, D = 560, can be > 0)."
    )
    md = ["## 3. Gaussian likelihood = squared error, beta = 2 sigma^2 (Frey faces)"]
    res = {"rows": rows, "identity_max_rel_error": err}
    res["param_rel_distance_mse_vs_gaussian"] = rel
    return res, md + [text, _table(rows), "![frey](frey_sigma.png)"]


# ------------------------------------------------------ 4. rate and distortion
def _rd_config(scale, beta=1.0, **objective):
    config = _mnist_config(4000, scale, latent_dim=50)
    config.objective.update(beta=beta, **objective)
    config.train.write_figures = False
    return config


def _rd_stats(ctx, scale, exp, params) -> dict:
    """Test rate, distortion, KL per dim and active units of one trained VAE. Active
    units over the first 500 training images as the model saw them: one fixed
    binarization (``evaluate.fixed_binarization``) when the run binarizes dynamically,
    not the grey levels, which a Bernoulli VAE was never trained on."""
    x = exp.eval_sets()["test"][: _n(10000, scale, 1000)]
    out = theory.rate_distortion(exp.model, params, x, jax.random.key(4))
    means_fn = exp.model.posterior_means
    train_x = exp.dataset.train[:500]  # evaluate.active_units' default count
    if exp.binarize:
        train_x = evaluate.fixed_binarization(train_x, jax.random.key(6))
    au = evaluate.active_units(means_fn, params, train_x, jax.random.key(5))
    out["kl_per_dim"] = out["kl_per_dim"].tolist()
    beta = exp.config.objective.beta
    return {"beta": beta, **out, "active_units": au["active_units"][0]}


def _rd_run(ctx, scale, **objective) -> dict:
    exp, params, _ = autoencoders.fit(_rd_config(scale, **objective), ctx["mnist"])
    return _rd_stats(ctx, scale, exp, params)


def _rd_sweep(ctx, scale, betas, workdir) -> list[dict]:
    """The beta sweep trained as one vmapped program (``launch.fit_sweep``; resumes)."""
    fits = launch.fit_sweep(
        _rd_config(scale),
        [{"objective.beta": b} for b in betas],
        workdir,
        mode="vmap",
        dataset=ctx["mnist"],
    )
    return [_rd_stats(ctx, scale, exp, params) for _, exp, params in fits]


def _rd_figure(sweep, path) -> None:
    """Rate vs distortion with -ELBO = D + R iso-lines; sorted KL per dim vs beta."""
    fig, (ax, ax2) = _figure(1, 2, size=(12, 4.3))
    rates, dists = [r["rate"] for r in sweep], [r["distortion"] for r in sweep]
    totals = [r + d for r, d in zip(rates, dists)]
    grid = np.linspace(0, max(rates) * 1.1, 2)
    for c in np.linspace(min(totals), max(totals), 5):
        ax.plot(grid, c - grid, "k--", lw=0.6, alpha=0.5)
        ax.annotate(f"-ELBO={c:.0f}", (grid[1], c - grid[1]), fontsize=7, alpha=0.7)
    ax.plot(rates, dists, "o-")
    for r in sweep:
        ax.annotate(f"beta={r['beta']:g}", (r["rate"], r["distortion"]), fontsize=8)
    ax.set(
        xlabel="rate R = KL (nats)",
        ylabel="distortion D = -E log p(x|z) (nats)",
        ylim=(min(dists) * 0.95, max(dists) * 1.05),
        title="dashed: ELBO iso-lines D + R = c",
    )
    kl = np.stack([np.sort(r["kl_per_dim"])[::-1] for r in sweep])  # [betas, K]
    im = ax2.imshow(kl, aspect="auto", cmap="viridis")
    ax2.set_yticks(range(len(sweep)), [f"{r['beta']:g}" for r in sweep])
    ax2.set(xlabel="latent dim (sorted)", ylabel="beta", title="test KL per dim (nats)")
    fig.colorbar(im, ax=ax2)
    _save(fig, path)


def _kl_dims_figure(variants, lam, path) -> None:
    fig, ax = _figure(size=(6, 3.8))
    for name, r in variants.items():
        label = f"{name} (active units {r['active_units']})"
        ax.plot(np.sort(r["kl_per_dim"])[::-1], marker=".", label=label)
    ax.axhline(lam, color="k", ls=":", lw=0.8)
    ax.set(xlabel="latent dim (sorted)", ylabel="test KL per dim (nats)", yscale="log")
    ax.legend(fontsize=8)
    _save(fig, path)


def rate_distortion_part(ctx, workdir, scale):
    betas = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    start = time.time()
    points = _rd_sweep(ctx, scale, betas, workdir / "beta_sweep")
    sweep_seconds = time.time() - start
    _rd_figure(points, workdir / "rate_distortion.png")
    steps, lam = _mnist_config(4000, scale).train.num_steps, 0.5
    variants = {"plain": next(r for r in points if r["beta"] == 1.0)}
    variants["kl_warmup"] = _rd_run(ctx, scale, kl_warmup_steps=steps // 2)
    variants[f"free_bits_{lam}"] = _rd_run(ctx, scale, free_bits=lam)
    _kl_dims_figure(variants, lam, workdir / "active_units.png")
    keys = ("rate", "distortion", "elbo", "active_units")
    rows = [{"beta": r["beta"], **{k: r[k] for k in keys}} for r in points]
    vrows = [
        {"run (beta=1)": n, **{k: r[k] for k in keys}} for n, r in variants.items()
    ]
    text = (
        f"MLP VAE 784-400-50, {steps} steps per run; test rate = mean KL, distortion "
        "= mean -log p(x|z) (one z), nats. Active units: Var_x E_q[z_u|x] >= 0.01 over "
        f"500 training images. Warm-up: beta 0 -> 1 over {steps // 2} steps; free "
        f"bits: lambda = {lam} nats per dim, on the batch-mean KL of each dim. The "
        f"{len(betas)} betas train together as one vmapped XLA program "
        f"(`launch.fit_sweep`, {sweep_seconds:.0f} s with evaluation; runs in "
        "beta_sweep/)."
    )
    md = ["## 4. Rate and distortion (MNIST, K = 50)", text, _table(rows)]
    md += ["![rate distortion](rate_distortion.png)", _table(vrows)]
    return {"sweep": points, "variants": variants}, md + ["![units](active_units.png)"]


# --------------------------------------------------------- 5. the VI identity
def _linear_gaussian_data(d=8, k=3, n=2256):
    """(W, b, log s) with correlated columns (non-diagonal posterior), x: [n, d]."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((d, k)) + 0.8 * rng.standard_normal((d, 1))
    W, b = jnp.asarray(W, jnp.float32), jnp.asarray(rng.standard_normal(d), jnp.float32)
    log_s = jnp.log(jnp.float32(0.5))
    kz, ke = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kz, (n, k)) @ W.T + b[None]
    return (W, b, log_s), x + jnp.exp(log_s) * jax.random.normal(ke, x.shape)


def _vi_figure(runs, floor, path) -> None:
    fig, (ax, ax2) = _figure(1, 2, size=(12, 4.2))
    for posterior, recs in runs.items():
        step = [r["step"] for r in recs]
        for key, ls in (("elbo", "-"), ("iwae_10", "--"), ("iwae_100", ":")):
            ax.plot(step, [r[key] for r in recs], ls, label=f"{posterior}: {key}")
        gap = [r["kl_to_posterior"] for r in recs]
        ax2.semilogy(step, gap, label=f"{posterior}: KL(q || p(z|x))")
    log_px = runs["full"][0]["log_px"]
    ax.axhline(log_px, color="k", label="log p(x) (exact)")
    late = [r["elbo"] for recs in runs.values() for r in recs[len(recs) // 10 :]]
    ax.set(
        ylim=(min(late) - 0.5, log_px + 0.3),
        xlabel="step",
        ylabel="nats (mean over 256 held-out x)",
        title="bounds on log p(x)",
    )
    ax2.axhline(floor, color="k", ls="--", label="best diagonal q (exact)")
    ax2.set(
        xlabel="step", ylabel="log p(x) - ELBO (nats)", title="gap = KL(q || p(z|x))"
    )
    for a in (ax, ax2):
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    _save(fig, path)


def vi_part(ctx, workdir, scale):
    true_params, x = _linear_gaussian_data()
    steps, runs = _n(3000, scale, 300), {}
    floor = float(theory.diagonal_gap_floor(x[0], *true_params))
    for posterior in ("diagonal", "full"):
        model, params = theory.linear_gaussian_vae(
            *true_params, jax.random.key(1), posterior
        )
        _, runs[posterior] = theory.train_encoder(
            model,
            params,
            x[:2000],
            x[2000:],
            true_params,
            jax.random.key(2),
            num_steps=steps,
            eval_every=steps // 30,
            learning_rate=0.1,
        )
    _vi_figure(runs, floor, workdir / "vi_identity.png")
    err = max(r["identity_error"] for recs in runs.values() for r in recs)
    rel = max(r["identity_rel_error"] for recs in runs.values() for r in recs)
    keys = ("log_px", "elbo", "iwae_10", "iwae_100", "kl_to_posterior")
    rows = [
        {"q": n, "step": recs[i]["step"], **{k: recs[i][k] for k in keys}}
        for i in (0, -1)
        for n, recs in runs.items()
    ]
    text = (
        "p(z) = N(0, I_3), p(x|z) = N(W z + b, 0.25 I_8), W with correlated columns. "
        "The decoder is fixed to the true model; a linear amortised encoder (diagonal "
        f"or full-covariance q) is trained {steps} Adam steps with the VAE's own "
        "one-sample objective on 2000 draws from the model. Exact log p(x), ELBO and "
        "KL(q || p(z|x)) in closed form on 256 held-out x; L_k estimated. Largest "
        f"|log p(x) - ELBO - KL| over all records and x: {err:.2g} nats ({rel:.2g} of "
        f"|ELBO| + KL: float32 rounding). The best diagonal q leaves a gap of "
        f"{floor:.4f} nats (exact); the trained gaps end at "
        f"{runs['diagonal'][-1]['kl_to_posterior']:.4f} (diagonal) and "
        f"{runs['full'][-1]['kl_to_posterior']:.4f} (full)."
    )
    md = ["## 5. The VI identity log p(x) = ELBO + KL(q(z|x) || p(z|x))", text]
    res = {"runs": runs, "identity_max_error": err, "identity_max_rel_error": rel}
    res["diagonal_floor"] = floor
    return res, md + [_table(rows), "![vi identity](vi_identity.png)"]


PART_FNS = {
    "gradients": gradients_part,
    "full_covariance": full_covariance_part,
    "gaussian_mse": gaussian_mse_part,
    "rate_distortion": rate_distortion_part,
    "vi": vi_part,
}


class _Data(dict):
    """Datasets loaded on first use: ctx["mnist"] (all 60,000 training images, as
    vae_mnist.py and the sweep's own loading use them), ctx["frey"]."""

    def __missing__(self, name):
        if name == "mnist":
            self[name] = data_lib.load_dataset("mnist", valid_size=0)
        else:
            self[name] = data_lib.load_dataset({"frey": "frey_faces"}.get(name, name))
        return self[name]


def run(workdir: pathlib.Path, scale: float, parts) -> dict:
    """Runs the named parts in order, rewriting the report (and its wall time) after each."""
    start, ctx, results = time.time(), _Data(), {}
    head = [
        "# VAE theory, executable",
        f"scale = {scale}; backend {jax.default_backend()}",
    ]
    md = []
    for i, part in enumerate(parts):
        part_start = time.time()
        results[part], lines = PART_FNS[part](ctx, workdir, scale)
        md += lines + [f"({time.time() - part_start:.0f} s)"]
        results["seconds"] = seconds = time.time() - start
        done = ", ".join(parts[: i + 1])
        timing = f"**Wall time: {seconds:.0f} s ({seconds / 60:.1f} min)** for {done}."
        text = "\n\n".join(head + [timing] + md) + "\n"
        (workdir / "report.md").write_text(text)
        (workdir / "results.json").write_text(
            json.dumps(results, indent=1, default=float)
        )
    return results


def main():
    runtime.configure()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies steps")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"from {PARTS}")
    args = parser.parse_args()
    workdir = args.workdir.expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    run(workdir, args.scale, args.parts.split(","))
    print((workdir / "report.md").read_text())


if __name__ == "__main__":
    main()
