"""Kill-and-resume: a runner process killed (SIGKILL), resumed, preempted (SIGTERM)
and resumed again ends bit-identical to an uninterrupted run (slow; the in-process
SIGTERM-and-resume check is ``test_loop.test_resume_matches_uninterrupted_run_bitwise``)."""

import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from vae_jax import checkpoint, writer

from helpers import REPO

NUM_STEPS = 3000


def _command(workdir):
    return [
        sys.executable,
        "-m",
        "experiments.run",
        "--config=experiments/configs/quickstart.py",
        f"--workdir={workdir}",
        "--config.model.hidden=(256,256)",
        f"--config.train.num_steps={NUM_STEPS}",
        "--config.train.steps_per_dispatch=20",
        "--config.train.log_every=100",
        "--config.train.checkpoint_every=100",
        "--config.train.eval_every=0",
        "--config.train.write_figures=False",
    ]


def _latest(workdir):
    manager = checkpoint.make_manager(pathlib.Path(workdir) / "checkpoints", 3)
    step = manager.latest_step()
    return step, manager.restore(step)


def _checkpoint_steps(workdir):
    ckpt_dir = pathlib.Path(workdir) / "checkpoints"
    if not ckpt_dir.exists():
        return []
    return [int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()]


def _interrupt_after_a_new_checkpoint(workdir, signum, after_step):
    """Runs the command and sends ``signum`` once a checkpoint past ``after_step`` exists."""
    proc = subprocess.Popen(
        _command(workdir),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while max(_checkpoint_steps(workdir), default=-1) <= after_step:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=240)
    step_at_stop, _ = _latest(workdir)
    assert after_step < step_at_stop < NUM_STEPS, "the run finished before the signal"
    return proc.returncode, stderr, step_at_stop


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    subprocess.run(
        _command(workdir), cwd=REPO, check=True, capture_output=True, timeout=600
    )
    return workdir


@pytest.mark.slow  # ~1 min on 2 cores: four runner processes of 3000 steps
def test_killed_then_preempted_run_resumes_bit_identical(tmp_path, uninterrupted):
    returncode, _, killed_at = _interrupt_after_a_new_checkpoint(
        tmp_path, signal.SIGKILL, after_step=-1
    )
    assert returncode == -signal.SIGKILL
    # The rerun resumes from the SIGKILL's last checkpoint; SIGTERM then saves and exits 0.
    returncode, stderr, preempted_at = _interrupt_after_a_new_checkpoint(
        tmp_path, signal.SIGTERM, after_step=killed_at
    )
    assert f"Resuming from step {killed_at}" in stderr
    assert returncode == 0 and "Rerun the same command to resume" in stderr
    resumed = subprocess.run(
        _command(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming from step {preempted_at}" in resumed.stderr
    step_a, tree_a = _latest(uninterrupted)
    step_b, tree_b = _latest(tmp_path)
    assert step_a == step_b == NUM_STEPS
    for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)):
        np.testing.assert_array_equal(a, b)
    # Training averages are windows between log steps: identical up to the first stop; a
    # SIGTERM flushes a partial window. Final evaluations are identical.
    records_a = writer.read_metrics(uninterrupted / "metrics.jsonl")
    records_b = writer.read_metrics(tmp_path / "metrics.jsonl")
    before = lambda records: [
        r for r in records if r["step"] < killed_at // 100 * 100 + 1
    ]
    assert before(records_a) == before(records_b)
    assert records_a[-1] == records_b[-1] and "test/elbo" in records_a[-1]
