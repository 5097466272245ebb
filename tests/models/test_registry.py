"""Adding a model family: a toy VAE with a Laplace prior, registered by name, runs
through training, evaluation, a vmapped sweep and anomaly scores without touching any
other file (the README's "Adding a model")."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from vae_jax import distributions as dist
from vae_jax import evaluate, models, objectives, runs
from vae_jax.models import vae
from vae_jax.studies import anomaly
from vae_jax.sweep import launch, spec

from helpers import make_config


class LaplacePriorVAE(vae.VAE):
    """p(z) = prod_j Laplace(z_j; 0, 1), q(z|x) diagonal Gaussian: no closed-form KL,
    so the ELBO's KL is the Monte-Carlo mean of log q(z|x) - log p(z)."""

    @nn.nowrap
    def log_prior(self, z):
        """log p(z) = sum_j -|z_j| - log 2. z: [K] -> scalar."""
        return jnp.sum(-jnp.abs(z) - jnp.log(2.0))

    @nn.nowrap
    def log_weights(self, params, x, key, num_samples):
        mean, logvar = self.apply(params, x, method="encode")  # [K], [K]
        z = dist.sample_diag_normal(key, mean, logvar, num_samples)  # [S, K]
        log_px = self.log_px(params, x, z)
        log_qz = jax.vmap(dist.diag_normal_logpdf, in_axes=(0, None, None))(
            z, mean, logvar
        )
        return log_px + jax.vmap(self.log_prior)(z) - log_qz, log_px

    @nn.nowrap
    def elbo_terms(self, params, x, key, num_samples=1):
        log_w, log_px = self.log_weights(params, x, key, num_samples)
        return -jnp.mean(log_px), jnp.mean(log_px - log_w)

    @nn.nowrap
    def sample_latents(self, params, key, num_samples):
        return jax.random.laplace(key, (num_samples, self.latent_dim))

    @nn.nowrap
    def kl_per_dimension(self, params, xs):
        return None  # no closed form


def build_laplace_vae(model_config, *, image_shape, likelihood, sigma=None):
    return vae.build(
        model_config,
        image_shape=image_shape,
        likelihood=likelihood,
        sigma=sigma,
        vae_class=LaplacePriorVAE,
    )


# Two configs of the new family: separate runs (the first is the family's run checked
# below) and one vmapped program.
SWEEP = [{"objective.beta": 1.0}, {"objective.beta": 0.5}]


@pytest.fixture(scope="module")
def laplace_config():
    """``model.kind = "laplace_vae"`` registered while this module's tests run."""
    family = models.Family(build_laplace_vae, ("elbo", "iwae"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(models.MODELS, "laplace_vae", family)
        yield make_config(
            "quickstart",
            model={"kind": "laplace_vae", "hidden": (32,), "latent_dim": 4},
            train={
                "num_steps": 300,
                "batch_size": 50,
                "log_every": 100,
                "eval_every": 0,
                "write_figures": False,
            },
        )


@pytest.fixture(scope="module")
def sweeps(laplace_config, tmp_path_factory):
    """SWEEP trained by separate ``loop.train_and_evaluate`` runs and vmapped: (root,
    {mode: result rows})."""
    root = tmp_path_factory.mktemp("laplace")
    rows = {
        mode: launch.run_sweep(laplace_config, SWEEP, root / mode, mode=mode)
        for mode in ("process", "vmap")
    }
    return root, rows


@pytest.fixture(scope="module")
def trained(sweeps):
    """(experiment, final state, final metrics, 40 test images) of SWEEP[0]'s run."""
    root, rows = sweeps
    run = runs.load_run(root / "process" / spec.run_name(SWEEP[0]))
    x = np.asarray(run.eval_split("test")[:40])
    return run.experiment, run.state, rows["process"][0], x


def test_laplace_log_prior_matches_scipy():
    z = np.array([-2.0, -0.3, 0.0, 1.7])
    model = LaplacePriorVAE(models.MLP(()), models.MLP((), output_dim=3), 4)
    expected = scipy.stats.laplace.logpdf(z).sum()
    np.testing.assert_allclose(model.log_prior(jnp.asarray(z)), expected, rtol=1e-6)


def test_registered_family_trains_and_evaluates(trained):
    exp, state, final, x = trained
    assert isinstance(exp.model, LaplacePriorVAE)
    assert int(state.step) == 300 and np.isfinite(final["test/elbo"])
    init_elbo = evaluate.evaluate_dataset(
        evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0}),
        exp.init_state().params,
        x,
        40,
        exp.keys["eval"],
    )["elbo"]
    assert final["test/elbo"] > init_elbo + 5.0  # it learned (nats per image)
    # L_k with the Laplace prior: ELBO <= L_50 (Burda et al. 2015, Thm. 1).
    ll_fn = evaluate.make_log_likelihood_fn(exp.model.log_weights, 50, 25)
    nll = evaluate.evaluate_log_likelihood(ll_fn, state.params, x, 20, exp.keys["eval"])
    assert -nll["nll"] > final["test/elbo"] - 0.5
    units = evaluate.active_units(
        exp.model.posterior_means, state.params, x, exp.keys["eval"]
    )
    assert len(units["active_units"]) == 1 and 0 <= units["active_units"][0] <= 4


def test_registered_family_scores_anomalies(trained):
    """Anomaly scores call the same protocol: -ELBO and -L_k per example."""
    exp, state, _, x = trained
    key = jax.random.key(3)
    elbo_score = anomaly.make_score_fn(exp.model, "elbo")
    neg_elbo = objectives.negative_elbo(
        state.params, x[0], key, {"beta": 1.0}, model=exp.model
    )[0]
    np.testing.assert_allclose(elbo_score(state.params, x[0], key), neg_elbo)
    iwae_score = jax.jit(
        jax.vmap(anomaly.make_score_fn(exp.model, "iwae", 100), (None, 0, None))
    )
    elbo_scores = jax.jit(jax.vmap(elbo_score, (None, 0, None)))(state.params, x, key)
    assert np.mean(iwae_score(state.params, x, key)) < np.mean(elbo_scores)


def test_registered_family_sweeps_vmapped_as_separate_runs(sweeps):
    _, rows = sweeps
    vmapped, single = rows["vmap"], rows["process"]
    assert [r["status"] for r in vmapped + single] == ["done"] * 4
    for a, b in zip(vmapped, single):
        np.testing.assert_allclose(
            float(a["test/elbo"]), float(b["test/elbo"]), rtol=1e-4
        )
    assert vmapped[0]["test/elbo"] != vmapped[1]["test/elbo"]
