"""``runs.load_run`` rebuilds a finished run from its workdir, bit for bit, as a
``runs.Run`` whose bound functions agree with the run's records and
``evaluate.evaluate_model``, for every model family the runner trains."""

import json
import pathlib
import shutil
import subprocess
import sys

import flax.serialization
import jax
import numpy as np
import pytest

from vae_jax import build, checkpoint, evaluate, runs, writer
from vae_jax.configs import default

import helpers


@pytest.fixture(scope="module")
def finished(straight_run):
    """(workdir, final metrics) of ``straight_run``: 40 steps of a (32,) MLP VAE,
    checkpoints kept at steps 20/30/40."""
    return straight_run, writer.read_metrics(straight_run / "metrics.jsonl")[-1]


@pytest.fixture(scope="module")
def run(finished):
    return runs.load_run(finished[0])


def _raw_params(workdir: pathlib.Path, step: int):
    """The params of checkpoint ``step`` as orbax stored them (no template)."""
    manager = checkpoint.make_manager(workdir / "checkpoints", 3)
    return manager.restore(step)["params"]


def test_load_run_restores_the_final_params_and_evaluation(finished, run):
    workdir, final = finished
    assert isinstance(run, runs.Run)
    assert run.step == int(run.state.step) == 40
    assert run.config.model.hidden == (32,)  # JSON arrays come back as tuples
    assert run.model is run.experiment.model and run.params is run.state.params
    restored = flax.serialization.to_state_dict(run.params)
    jax.tree.map(np.testing.assert_array_equal, restored, _raw_params(workdir, 40))
    exp = run.experiment
    eval_fn = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    test = evaluate.evaluate_dataset(
        eval_fn,
        run.params,
        run.eval_split("test"),
        run.config.train.eval_batch_size,
        run.keys["eval"],
    )
    assert test["elbo"] == final["test/elbo"]
    assert repr(run).startswith(f"Run({str(workdir)!r}, step=40, model='vae'")


def test_load_run_at_a_step(finished):
    workdir, _ = finished
    state = runs.load_run(workdir, step=20).state
    assert int(state.step) == 20
    restored = flax.serialization.to_state_dict(state.params)
    jax.tree.map(np.testing.assert_array_equal, restored, _raw_params(workdir, 20))
    with pytest.raises(FileNotFoundError, match=r"step 7 .*steps: \[20, 30, 40\]"):
        runs.load_run(workdir, step=7)


def test_load_run_still_unpacks_as_experiment_and_state(run):
    exp, state = run  # the pre-Run tuple API, for callers not yet updated
    assert exp is run.experiment and state is run.state


def test_load_run_of_a_run_written_before_newer_fields_existed(tmp_path, finished):
    """A config.json without fields added to the library since (here the objective's
    MMD kernel and the model's flow length) loads, the missing ones at their defaults,
    and restores the same params."""
    workdir = tmp_path / "old"
    shutil.copytree(finished[0], workdir)
    stored = json.loads((workdir / "config.json").read_text())
    del stored["objective"]["mmd_kernel"], stored["model"]["flow_length"]
    (workdir / "config.json").write_text(json.dumps(stored))
    old = runs.load_run(workdir)
    defaults = default.get_config()
    assert old.config.objective.mmd_kernel == defaults.objective.mmd_kernel
    assert old.config.model.flow_length == defaults.model.flow_length
    assert old.config.model.hidden == (32,)  # stored values win over the defaults
    restored = flax.serialization.to_state_dict(old.params)
    jax.tree.map(np.testing.assert_array_equal, restored, _raw_params(workdir, 40))


def test_load_run_without_a_run_or_a_checkpoint_says_so(tmp_path, finished):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        runs.load_run(tmp_path / "missing")
    writer.write_config(tmp_path, writer.read_config(finished[0]))
    with pytest.raises(FileNotFoundError, match="no checkpoints/ directory"):
        runs.load_run(tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # looking created nothing
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint yet"):
        runs.load_run(tmp_path)


def test_run_data_splits_and_labels(run):
    ds = run.experiment.dataset
    assert run.train is ds.train and run.valid is ds.valid and run.test is ds.test
    for split in ("train", "valid", "test"):
        x, y = getattr(run, split), run.labels(split)
        assert y is getattr(run, f"{split}_labels") and y.shape == (len(x),)
        np.testing.assert_array_equal(run.eval_split(split), x)  # no binarization
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        run.labels("dev")


def test_run_functions_have_the_documented_shapes(run):
    x = run.test[:7]  # 7 rows in batches of 3: a padded last batch
    k, d = run.config.model.latent_dim, run.dataset.dim
    z = run.encode(x, batch_size=3)
    assert z.shape == (7, k) and isinstance(z, np.ndarray)
    np.testing.assert_allclose(z, run.model.code(run.params, x), rtol=1e-5, atol=1e-6)
    assert run.posterior_logvar(x).shape == (7, k)
    recon = run.reconstruct(x, batch_size=3)
    assert recon.shape == (7, d)
    np.testing.assert_allclose(recon, run.decode(z), rtol=1e-5, atol=1e-6)
    samples = run.sample(5, jax.random.key(0))
    assert samples.shape == (5, d) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(samples, run.sample(5, jax.random.key(0)))
    with pytest.raises(ValueError, match=r"Expected images x: \[N, 64\]"):
        run.encode(x[0])


def test_run_elbo_is_the_recorded_test_elbo(finished, run):
    _, final = finished
    x = run.eval_split("test")
    terms = run.elbo_terms(x)  # defaults: the run's eval key and batch size
    assert {k: v.shape for k, v in terms.items()} == {
        "elbo": (len(x),),
        "recon": (len(x),),
        "kl": (len(x),),
    }
    np.testing.assert_allclose(
        terms["elbo"], -(terms["recon"] + terms["kl"]), rtol=1e-6
    )
    assert terms["kl"].min() >= 0
    np.testing.assert_allclose(terms["elbo"].mean(), final["test/elbo"], rtol=1e-6)
    np.testing.assert_allclose(terms["recon"].mean(), final["test/recon"], rtol=1e-6)
    np.testing.assert_array_equal(run.elbo(x), terms["elbo"])
    other = run.elbo(x, jax.random.key(1), num_samples=3)  # another estimate
    assert other.shape == (len(x),) and not np.array_equal(other, terms["elbo"])


def test_run_log_likelihood_is_evaluate_models(run):
    x = run.eval_split("test")[:30]
    bounds = run.log_likelihood(x, 10, chunk_size=4)
    assert bounds.shape == (30,) and bounds.dtype == np.float64
    key = jax.random.fold_in(run.keys["eval"], 5000)  # evaluate_model's key
    ll_fn = evaluate.make_log_likelihood_fn(run.model.log_weights, 10, 4)
    direct = evaluate.evaluate_log_likelihood(ll_fn, run.params, x, 20, key, 10)
    assert -bounds.mean() == direct["nll"]
    # L_10 >= the ELBO in expectation (Burda et al. 2015, Thm. 1).
    assert bounds.mean() > run.elbo(x).mean()


def test_evaluate_model_is_the_nll_and_active_units_of_the_run(run):
    exp, x = run.experiment, run.eval_split("test")[:40]
    out = evaluate.evaluate_model(
        exp, run.params, x, 10, chunk_size=4, batch_size=20, active_examples=100
    )
    key = jax.random.fold_in(exp.keys["eval"], 5000)
    ll_fn = evaluate.make_log_likelihood_fn(exp.model.log_weights, 10, 4)
    nll = evaluate.evaluate_log_likelihood(ll_fn, run.params, x, 20, key, 10)
    assert {k: out[k] for k in nll} == nll
    assert out["num_examples"] == 40 and out["num_samples"] == 10
    latent_dim = exp.config.model.latent_dim
    assert len(out["active_units"]) == 1 and 0 <= out["active_units"][0] <= latent_dim
    assert out["unit_variances"][0].shape == (latent_dim,)
    assert out["seconds"] > 0
    units = evaluate.experiment_active_units(exp, run.params, active_examples=100)
    assert units["active_units"] == out["active_units"]
    # L_10 >= the single-sample ELBO in expectation (Burda et al. 2015, Thm. 1).
    eval_fn = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    elbo = evaluate.evaluate_dataset(eval_fn, run.params, x, 40, key)["elbo"]
    assert -out["nll"] > elbo


def test_active_units_of_a_binarizing_run_use_one_fixed_binarization():
    """A run that binarizes dynamically counts its units on one fixed binarization of
    its training images (key fold_in(key, 1)), not on their grey levels."""
    config = helpers.short_run_config(10)
    config.data.binarize = "dynamic"
    exp = build.build_experiment(config)
    params, key = exp.init_state().params, jax.random.key(3)
    units = evaluate.experiment_active_units(exp, params, key, active_examples=100)
    images = exp.dataset.train[:100]
    binary = evaluate.fixed_binarization(images, jax.random.fold_in(key, 1))
    for x, same in ((binary, True), (images, False)):
        direct = evaluate.active_units(
            exp.model.posterior_means, params, x, jax.random.fold_in(key, 2), 100
        )
        close = np.allclose(direct["variances"][0], units["variances"][0], rtol=1e-5)
        assert close == same


def test_vae_jax_exports_load_run_lazily():
    probe = (
        "import sys, vae_jax\n"
        "assert 'vae_jax.runs' not in sys.modules and 'jax' not in sys.modules\n"
        "assert 'load_run' in dir(vae_jax)\n"
        "from vae_jax import load_run\n"
        "from vae_jax import runs\n"
        "assert load_run is runs.load_run\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.fixture(
    scope="module",
    params=[
        "ae",
        # ~30 s each on 2 CPU cores (a 10-step run, then every function compiled).
        pytest.param("full_covariance_vae", marks=pytest.mark.slow),
        pytest.param("hierarchical_vae", marks=pytest.mark.slow),
    ],
)
def loaded_family(request, family_run):
    """(family, its tiny run loaded, the run's final metrics): the families the runner
    trains besides ``straight_run``'s VAE."""
    workdir, final = family_run(request.param)
    return request.param, runs.load_run(workdir), final


def test_load_run_of_every_family(loaded_family):
    family, run, final = loaded_family
    assert run.family == family and run.step == 10
    x, k, d = run.test[:5], run.config.model.latent_dim, run.dataset.dim
    z = run.encode(x)
    assert z.shape == (5, k) and run.decode(z).shape == (5, d)
    np.testing.assert_allclose(run.reconstruct(x), run.decode(z), rtol=1e-5, atol=1e-6)
    key = jax.random.key(0)
    if family == "ae":
        assert not run.latent and not run.generative
        for call in (
            lambda: run.sample(3, key),
            lambda: run.elbo(x),
            lambda: run.log_likelihood(x, 5),
            lambda: run.posterior_logvar(x),
        ):
            with pytest.raises(NotImplementedError, match="the 'ae' model"):
                call()
        mse = np.mean(np.square(run.eval_split("test") - run.reconstruct(run.test)))
        np.testing.assert_allclose(mse, final["test/mse"], rtol=1e-5)
        return
    assert run.latent and run.generative
    assert run.sample(3, key).shape == (3, d)
    assert run.posterior_logvar(x).shape == (5, k)
    elbo = run.elbo(run.eval_split("test"))
    np.testing.assert_allclose(elbo.mean(), final["test/elbo"], rtol=1e-6)
    bounds = run.log_likelihood(x, 6, chunk_size=4)
    assert bounds.shape == (5,) and np.all(np.isfinite(bounds))
