"""scripts/zoo_benchmark.py --quick: one configuration per process, scored by the
evaluator, then the tables and figures; a finished configuration is not rerun."""

import json
import math
import subprocess
import sys

from helpers import REPO

SCRIPT = REPO / "scripts" / "zoo_benchmark.py"


def _run(workdir):
    command = [sys.executable, str(SCRIPT), "--workdir", str(workdir), "--quick"]
    command += ["--datasets", "mnist", "--models", "vae"]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=600
    )


def test_quick_benchmark_writes_the_table_and_figures(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results
    assert row["library"] == "vae_jax" and row["model"] == "vae"
    assert row["dataset"] == "digits" and row["steps"] > 0
    for value in (row["mse"], row["nll"], row["train_wall_seconds"]):
        assert math.isfinite(value) and value > 0
    for sampler in ("prior", "gmm"):
        assert math.isfinite(row[sampler]["frechet_distance"])
    assert row["nll"] < -row["elbo"] + 0.5  # L_k above the ELBO, same test images
    table = (tmp_path / "results.md").read_text()
    assert "| model | vae_jax mse | vae_jax nll |" in table and "| vae | " in table
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "scatter.png").is_file()
    again = _run(tmp_path)  # resumable: the finished configuration is skipped
    assert again.returncode == 0 and "0 configuration(s) to run" in again.stdout
