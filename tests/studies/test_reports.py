"""The report scripts run end to end at a tiny scale and write their reports (slow;
needs MNIST and Frey faces, found as the data loaders find them)."""

import json
import subprocess
import sys

import pytest

from vae_jax import data as data_lib

from helpers import REPO


def _needs(*names):
    try:
        for name in names:
            data_lib.load_dataset(name)
    except data_lib.DataError as err:
        pytest.skip(f"dataset missing: {err}")


def _run(script, workdir, *args):
    cmd = [sys.executable, str(REPO / "scripts" / script), "--workdir", str(workdir)]
    out = subprocess.run(
        cmd + list(args), capture_output=True, text=True, timeout=1800, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return (workdir / "report.md").read_text(), json.loads(
        (workdir / "results.json").read_text()
    )


@pytest.mark.slow
def test_autoencoder_report_runs(tmp_path):
    _needs("mnist", "frey_faces")
    report, results = _run("autoencoder_report.py", tmp_path, "--scale", "0.02")
    for heading in ("Linear AE vs PCA", "Denoising AE", "Sparse AE", "K = 20"):
        assert heading in report
    for line in report.splitlines():  # every figure the report links was written
        if line.startswith("!["):
            assert (tmp_path / line.split("(")[1].rstrip(")")).is_file(), line
    assert {"linear", "denoising", "sparse", "latent"} <= set(results)


@pytest.mark.slow
def test_vae_theory_report_runs(tmp_path):
    _needs("mnist", "frey_faces")
    report, results = _run("vae_theory_report.py", tmp_path, "--scale", "0.02")
    assert "Wall time" in report
    for line in report.splitlines():
        if line.startswith("!["):
            assert (tmp_path / line.split("(")[1].rstrip(")")).is_file(), line
    assert results["vi"]["identity_max_error"] < 0.05  # nats: exact up to float32
    assert len(results["rate_distortion"]["sweep"]) == 6
