"""``python -m experiments.evaluate`` and ``vae_jax.evaluate_run``: the numbers equal
the runner's records and ``evaluate``'s functions with the same keys; autoencoders and
switched-off sections are skipped with the reason."""

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from vae_jax import evaluate, evaluate_run, runs, writer
from vae_jax.studies import classifier

from helpers import REPO


def _evaluate_cli(*flags):
    command = [sys.executable, "-m", "experiments.evaluate", *flags]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def evaluated(straight_run, tmp_path_factory):
    """(workdir, final metrics, CLI result) of the CLI on a copy of ``straight_run``
    with k = 10, latents exported, no sample quality."""
    workdir = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(straight_run, workdir)
    flags = ["--nll_samples=10", "--export_latents", "--no_sample_quality"]
    result = _evaluate_cli(f"--workdir={workdir}", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    final = writer.read_metrics(workdir / "metrics.jsonl")[-1]
    return workdir, final, result


def test_cli_numbers_equal_the_runner_and_evaluate(evaluated):
    workdir, final, cli = evaluated
    result = json.loads((workdir / "eval" / "test.json").read_text())
    run = runs.load_run(workdir)
    x = run.eval_split("test")
    assert result["step"] == 40 and result["num_examples"] == len(x)
    # ELBO: the runner's program, key and batches.
    assert result["elbo"]["elbo"] == final["test/elbo"]
    assert result["elbo"]["recon"] == final["test/recon"]
    assert result["elbo"]["kl"] == final["test/kl"]
    assert 0 < result["elbo"]["elbo_stderr"] < abs(result["elbo"]["elbo"])
    # L_k: evaluate_model's key, batch 20, chunk 500 (scripts/reproduce_iwae.py's).
    key = jax.random.fold_in(run.keys["eval"], 5000)
    ll_fn = evaluate.make_log_likelihood_fn(run.model.log_weights, 10, 500)
    direct = evaluate.evaluate_log_likelihood(ll_fn, run.params, x, 20, key, 10)
    assert {k: result["log_likelihood"][k] for k in direct} == direct
    units = evaluate.experiment_active_units(run.experiment, run.params)
    assert result["active_units"]["counts"] == units["active_units"]
    recon = result["reconstruction"]
    mse = np.mean(np.square(x.astype(np.float64) - run.reconstruct(x)), axis=1)
    np.testing.assert_allclose(recon["mse_per_pixel"], mse.mean(), rtol=1e-12)
    assert recon["psnr_db"] > 0
    assert result["skipped"] == {"sample_quality": "switched off"}
    assert (
        f"NLL = -L_10  {direct['nll']:.3f} ± {direct['nll_stderr']:.3f}" in cli.stdout
    )
    assert (workdir / "eval" / "test_reconstructions.png").is_file()
    assert (workdir / "eval" / "samples.png").is_file()


def test_cli_exports_the_latents_of_every_split(evaluated):
    workdir, _, _ = evaluated
    run = runs.load_run(workdir)
    with np.load(workdir / "eval" / "latents.npz") as latents:
        arrays = dict(latents)
    k = run.config.model.latent_dim
    expected = {}
    for split in ("train", "valid", "test"):
        n = len(getattr(run, split))
        expected.update(
            {
                f"{split}_mean": (n, k),
                f"{split}_logvar": (n, k),
                f"{split}_labels": (n,),
            }
        )
    assert {name: a.shape for name, a in arrays.items()} == expected
    np.testing.assert_array_equal(arrays["test_labels"], run.test_labels)
    np.testing.assert_allclose(
        arrays["valid_mean"], run.encode(run.valid), rtol=1e-6, atol=1e-6
    )
    _, logvar = run.model.apply(run.params, run.valid, method="encode")
    np.testing.assert_allclose(arrays["valid_logvar"], logvar, rtol=1e-5, atol=1e-5)


def test_cli_without_a_run_is_one_error_line(tmp_path):
    result = _evaluate_cli(f"--workdir={tmp_path / 'missing'}", "--nll_samples=5")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("E")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "FileNotFoundError" in errors[0] and "holds no run" in errors[0]


def test_sample_quality_trains_the_classifier_once(straight_run, tmp_path, monkeypatch):
    run = runs.load_run(straight_run)
    options = {"nll_samples": 0, "classifier_cache": tmp_path, "classifier_steps": 300}
    result = evaluate_run.evaluate_run(run, "valid", **options)
    assert result["skipped"] == {"log_likelihood": "nll_samples=0"}
    assert result["active_units"]["counts"][0] <= run.config.model.latent_dim
    quality = result["sample_quality"]
    assert quality["num_samples"] == len(run.valid) == 200
    assert 0 < quality["frechet_distance_data"] < quality["frechet_distance"]
    assert 1 < quality["inception_score"] < quality["inception_score_data"] <= 10
    assert quality["classifier_test_accuracy"] > 0.8
    assert "NOT Inception" in quality["feature_space"]
    assert len(list(tmp_path.glob("digits-*.msgpack"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier was not used")

    monkeypatch.setattr(classifier, "train_classifier", no_training)
    again = evaluate_run.evaluate_run(run, "valid", **options)
    assert again["sample_quality"] == quality
    assert "samples        Frechet distance" in evaluate_run.summary(again)


def test_autoencoder_gets_reconstructions_only(family_run):
    workdir, final = family_run("ae")
    run = runs.load_run(workdir)
    result = evaluate_run.evaluate_run(run, nll_samples=10)
    assert set(result["skipped"]) == {
        "elbo",
        "log_likelihood",
        "active_units",
        "sample_quality",
    }
    assert "not a latent-variable model" in result["skipped"]["elbo"]
    assert not {"elbo", "log_likelihood", "active_units"} & set(result)
    np.testing.assert_allclose(
        result["reconstruction"]["mse_per_pixel"], final["test/mse"], rtol=1e-5
    )
    evaluate_run.write_json(result, workdir / "eval" / "test.json")
    assert json.loads((workdir / "eval" / "test.json").read_text()) == result
    assert "skipped        elbo" in evaluate_run.summary(result)
