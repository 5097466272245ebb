"""One compiled training program per run, whatever the log / eval / checkpoint
intervals, the epoch length and the resume step; resumed runs stay bit-identical."""

import contextlib
import logging
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from vae_jax import loop, runs
from vae_jax.configs import quickstart
from vae_jax.sweep import launch

REPO = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def compiles_of(name: str):
    """Collects JAX's "Finished XLA compilation of jit(<name>)" log records."""
    found = []

    class Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if f"XLA compilation of jit({name})" in message:
                found.append(message)

    handler, logger = Collect(), logging.getLogger("jax")
    logger.addHandler(handler)
    previous = jax.config.jax_log_compiles
    jax.config.update("jax_log_compiles", True)
    try:
        yield found
    finally:
        jax.config.update("jax_log_compiles", previous)
        logger.removeHandler(handler)


def _config(num_steps: int):
    """Digits, B = 64: 1597 // 64 = 24 steps per epoch; intervals that divide neither
    the epoch nor each other."""
    config = quickstart.get_config()
    config.model.update(hidden=(16,), latent_dim=3)
    config.train.update(
        num_steps=num_steps,
        batch_size=64,
        steps_per_dispatch=10,
        log_every=7,
        eval_every=11,
        checkpoint_every=13,
        write_figures=False,
    )
    return config


def test_run_and_resume_compile_the_training_chunk_once(tmp_path):
    with compiles_of("chunk") as first:
        loop.train_and_evaluate(_config(50), str(tmp_path / "resumed"))
    assert len(first) == 1, first
    with compiles_of("chunk") as second:  # resumes at step 50, mid-epoch and mid-chunk
        loop.train_and_evaluate(_config(80), str(tmp_path / "resumed"))
    assert len(second) == 1, second
    loop.train_and_evaluate(_config(80), str(tmp_path / "straight"))
    resumed = runs.load_run(tmp_path / "resumed").state
    straight = runs.load_run(tmp_path / "straight").state
    assert int(resumed.step) == int(straight.step) == 80
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight)):
        np.testing.assert_array_equal(a, b)


def test_vmapped_sweep_compiles_its_chunk_once(tmp_path):
    sweep = [{"objective.beta": 0.5}, {"objective.beta": 1.0}]
    with compiles_of("chunk") as found:
        rows = launch.run_sweep(_config(40), sweep, tmp_path, mode="vmap")
    assert [r["status"] for r in rows] == ["done", "done"]
    assert len(found) == 1, found


def _runner_seconds(workdir, cache_dir) -> dict[str, float]:
    """Runs the quickstart runner 30 steps; the summary line's seconds per activity."""
    env = {**os.environ, "VAE_JAX_COMPILATION_CACHE": str(cache_dir)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.run",
            f"--workdir={workdir}",
            "--config=experiments/configs/quickstart.py",
            "--config.train.num_steps=30",
            "--config.train.write_figures=False",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = re.search(r"time \(s\): (.*); wall ([\d.]+)", out.stderr)
    seconds = dict(part.rsplit(" ", 1) for part in line.group(1).split(", "))
    return {k: float(v) for k, v in seconds.items()} | {"wall": float(line.group(2))}


@pytest.mark.slow
def test_warm_compilation_cache_skips_the_compiles(tmp_path):
    cold = _runner_seconds(tmp_path / "cold", tmp_path / "cache")
    assert any((tmp_path / "cache").iterdir())  # programs were stored
    warm = _runner_seconds(tmp_path / "warm", tmp_path / "cache")
    assert warm["compile"] < 0.6 * cold["compile"], (cold, warm)
