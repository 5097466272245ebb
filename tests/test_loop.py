"""train_and_evaluate and the runner end to end on the bundled digits."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from vae_jax import checkpoint, loop, writer
from vae_jax.configs import quickstart

REPO = pathlib.Path(__file__).resolve().parents[1]


def _config(num_steps, **train):
    config = quickstart.get_config()
    config.model.hidden = (32,)
    config.train.update(
        num_steps=num_steps, steps_per_dispatch=5, log_every=10, checkpoint_every=10
    )
    config.train.update(train)
    return config


def _final_params(workdir):
    manager = checkpoint.make_manager(pathlib.Path(workdir) / "checkpoints", 3)
    step = manager.latest_step()
    tree = manager.restore(step)
    return step, jax.tree.leaves(tree["params"])


def test_writes_metrics_checkpoints_and_figures(tmp_path):
    final = loop.train_and_evaluate(_config(30), str(tmp_path))
    assert {"test/loss", "test/kl", "test/recon", "valid/loss"} <= set(final)
    assert final["test/kl"] >= 0
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if "train/loss" in r] == [10, 20, 30]
    for name in ("curves.png", "reconstructions.png", "samples.png", "config.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (
        json.loads((tmp_path / "config.json").read_text())["model"]["latent_dim"] == 8
    )
    tags = _tensorboard_tags(tmp_path / "tensorboard")
    assert {"train/loss", "test/loss", "reconstructions", "samples"} <= tags


def _tensorboard_tags(logdir):
    """Tags in TFRecord-framed event files (length, crc, Event proto, crc)."""
    from tensorboardX.proto import event_pb2

    tags = set()
    for path in pathlib.Path(logdir).glob("events.*"):
        raw, offset = path.read_bytes(), 0
        while offset < len(raw):
            length = int.from_bytes(raw[offset : offset + 8], "little")
            event = event_pb2.Event.FromString(raw[offset + 12 : offset + 12 + length])
            tags.update(v.tag for v in event.summary.value)
            offset += 12 + length + 4
    return tags


def test_resume_matches_uninterrupted_run_bitwise(tmp_path):
    loop.train_and_evaluate(
        _config(40, write_figures=False), str(tmp_path / "straight")
    )
    loop.train_and_evaluate(_config(20, write_figures=False), str(tmp_path / "split"))
    loop.train_and_evaluate(_config(40, write_figures=False), str(tmp_path / "split"))
    step_a, params_a = _final_params(tmp_path / "straight")
    step_b, params_b = _final_params(tmp_path / "split")
    assert step_a == step_b == 40
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)
    train_a = [
        r
        for r in writer.read_metrics(tmp_path / "straight" / "metrics.jsonl")
        if "train/loss" in r
    ]
    train_b = [
        r
        for r in writer.read_metrics(tmp_path / "split" / "metrics.jsonl")
        if "train/loss" in r
    ]
    assert train_a == train_b


def test_nan_stops_cleanly_and_keeps_last_good_checkpoint(tmp_path):
    loop.train_and_evaluate(_config(20, write_figures=False), str(tmp_path))
    bad = _config(60, write_figures=False)
    bad.optim.learning_rate = 1e38  # overflows to inf/nan within a few steps
    with pytest.raises(loop.NonFiniteLossError, match="Last good checkpoint: step 20"):
        loop.train_and_evaluate(bad, str(tmp_path))
    step, params = _final_params(tmp_path)
    assert step == 20 and all(np.all(np.isfinite(p)) for p in params)


def _run(workdir, *overrides, env=None):
    cmd = [
        sys.executable,
        "-m",
        "experiments.run",
        "--config=experiments/configs/quickstart.py",
        f"--workdir={workdir}",
        "--config.train.num_steps=10",
        "--config.train.log_every=5",
        "--config.train.write_figures=False",
        *overrides,
    ]
    return subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False
    )


def test_runner_trains_and_reports_backend(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "backend cpu" in result.stderr and "ex/s" in result.stderr
    assert (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        ("--config.model.latent_dim=-1", "latent_dim"),
        ("--config.objective.likelihood=poisson", "likelihood"),
        ("--config.data.name=cifar", "data.name"),
    ],
)
def test_runner_rejects_bad_config_with_one_message(tmp_path, override, message):
    result = _run(tmp_path, override)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_runner_reports_missing_dataset(tmp_path):
    env = {**os.environ, "VAE_JAX_DATA": str(tmp_path / "empty")}
    result = _run(
        tmp_path / "run",
        "--config.data.name=frey_faces",
        f"--config.data.data_dir={tmp_path / 'nowhere'}",
        env=env,
    )
    if result.returncode == 0:
        pytest.skip("frey_faces found through a fallback location")
    assert "frey_rawface.mat" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_workdir_is_reported_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = _run(blocker / "run")
    assert result.returncode == 1
    assert "not writable" in result.stderr and "step 5/" not in result.stderr


def test_wrongly_shaped_batch_gives_a_clear_error():
    from vae_jax import build, objectives

    exp = build.build_experiment(_config(10))
    state = exp.init_state()
    loss = objectives.batch_mean(exp.loss_one)
    with pytest.raises(ValueError, match=r"xs: \[B, D\]"):
        loss(state.params, exp.train_x[0], jax.random.PRNGKey(0), {"beta": 1.0})


def test_skip_mode_never_applies_nonfinite_updates(tmp_path):
    config = _config(30, write_figures=False, on_nonfinite="skip")
    config.optim.learning_rate = 1e38
    loop.train_and_evaluate(config, str(tmp_path))
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert sum(r.get("train/nonfinite", 0) for r in records) > 0
    step, params = _final_params(tmp_path)
    assert step == 30 and all(np.all(np.isfinite(p)) for p in params)
