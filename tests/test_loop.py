"""train_and_evaluate and the runner end to end on the bundled digits."""

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import types

import jax
import numpy as np
import pytest

from vae_jax import checkpoint, data, data_files, loop, preemption, runtime, writer

from helpers import REPO
from helpers import short_run_config as _config
from helpers import straight_config as _straight_config


def _final_params(workdir):
    manager = checkpoint.make_manager(pathlib.Path(workdir) / "checkpoints", 3)
    step = manager.latest_step()
    tree = manager.restore(step)
    return step, jax.tree.leaves(tree["params"])


def test_writes_metrics_checkpoints_and_figures(tmp_path):
    final = loop.train_and_evaluate(_config(30), str(tmp_path))
    assert {"test/elbo", "test/kl", "test/recon", "valid/elbo"} <= set(final)
    assert final["test/kl"] >= 0
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if "train/objective" in r] == [10, 20, 30]
    for name in ("curves.png", "reconstructions.png", "samples.png", "config.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (
        json.loads((tmp_path / "config.json").read_text())["model"]["latent_dim"] == 8
    )
    tags = _tensorboard_tags(tmp_path / "tensorboard")
    assert {"train/objective", "test/elbo", "reconstructions", "samples"} <= tags


def test_beta_run_reports_its_objective_and_an_elbo_comparable_across_splits(
    tmp_path, monkeypatch
):
    """beta = 0.5: ``train/objective`` is the minimised recon + 0.5 KL = -elbo - 0.5 KL;
    ``train/elbo`` and ``valid/elbo`` are both at beta = 1; nothing is called "loss".
    The run's start-up warns about a GPU JAX does not use (made visible here)."""
    warned = []
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(runtime, "visible_gpu_signs", lambda *a: ["nvidia-smi"])
    monkeypatch.setattr(loop.logging, "warning", lambda *a: warned.append(a[0] % a[1:]))
    config = _config(20, write_figures=False, eval_every=10)
    config.objective.beta = 0.5
    final = loop.train_and_evaluate(config, str(tmp_path))
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert not [k for r in records for k in r if k.endswith("loss")]
    trained = [r for r in records if "train/objective" in r]
    assert [r["step"] for r in trained] == [10, 20]
    for r in trained:
        weighted = -r["train/elbo"] - 0.5 * r["train/kl"]
        assert r["train/objective"] == pytest.approx(weighted, rel=1e-5)
        assert r["train/elbo"] == pytest.approx(-r["train/recon"] - r["train/kl"])
    assert {"valid/elbo", "valid/recon", "valid/kl", "test/elbo", "test/kl"} <= set(
        final
    )
    assert [w for w in warned if "A GPU is visible (nvidia-smi)" in w]


@pytest.mark.parametrize("with_test", [False, True])
def test_eval_every_evaluates_the_validation_split_and_test_once(tmp_path, with_test):
    config = _config(
        20, write_figures=False, eval_every=10, eval_test_during_training=with_test
    )
    loop.train_and_evaluate(config, str(tmp_path))
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    steps = lambda split: [r["step"] for r in records if f"{split}/elbo" in r]
    assert steps("valid") == [10, 20]
    assert steps("test") == ([10, 20] if with_test else [20])


def test_eval_every_without_a_validation_split_is_a_warning():
    config = _config(10, eval_every=5)
    split = lambda n: np.zeros((n, 4), np.float32)
    exp = types.SimpleNamespace(
        config=config, dataset=types.SimpleNamespace(valid=split(0), test=split(3))
    )
    (line,) = loop.evaluation_warnings(exp)
    assert "no" in line and "data.valid_size" in line
    config.train.eval_test_during_training = True
    assert loop.evaluation_warnings(exp) == []
    config.train.update(eval_test_during_training=False, eval_every=0)
    assert loop.evaluation_warnings(exp) == []
    exp.dataset.valid = split(2)
    config.train.eval_every = 5
    assert loop.evaluation_warnings(exp) == []


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


def _checkpoint_steps(workdir):
    names = (p.name for p in (workdir / "checkpoints").iterdir())
    return sorted(int(name) for name in names if name.isdigit())


def test_resume_matches_uninterrupted_run_bitwise(tmp_path, straight_run, monkeypatch):
    """A run stopped by SIGTERM (in process, after the checkpoint at step 10: the chunk
    10-20 finishes, is logged and saved, ``Preempted`` is raised), finished by a rerun
    at num_steps = 20 and extended to 40 ends as the uninterrupted ``straight_run``:
    the same params, bit for bit, and the same training records."""
    save = checkpoint.save

    def save_then_signal(manager, state, step):
        save(manager, state, step)
        if step == 10:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(checkpoint, "save", save_then_signal)
    handler = signal.getsignal(signal.SIGTERM)
    stop = "Stopped by SIGTERM at step 20.*Rerun the same command to resume"
    with pytest.raises(preemption.Preempted, match=stop):
        loop.train_and_evaluate(_straight_config(40), str(tmp_path))
    assert _checkpoint_steps(tmp_path) == [10, 20]
    assert signal.getsignal(signal.SIGTERM) == handler  # restored after the stop
    monkeypatch.undo()
    loop.train_and_evaluate(_straight_config(20), str(tmp_path))  # resumes, finishes
    loop.train_and_evaluate(_straight_config(40), str(tmp_path))  # extends
    step_a, params_a = _final_params(straight_run)
    step_b, params_b = _final_params(tmp_path)
    assert step_a == step_b == 40
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)
    records_a = writer.read_metrics(straight_run / "metrics.jsonl")
    records_b = writer.read_metrics(tmp_path / "metrics.jsonl")
    train_a = [r for r in records_a if "train/objective" in r]
    train_b = [r for r in records_b if "train/objective" in r]
    assert [r["step"] for r in train_b] == [10, 20, 30, 40] and train_a == train_b
    assert records_a[-1] == records_b[-1] and "test/elbo" in records_a[-1]


def test_nan_stops_cleanly_and_keeps_last_good_checkpoint(tmp_path, straight_run):
    shutil.copytree(straight_run, tmp_path, dirs_exist_ok=True)  # finished at step 40
    bad = _straight_config(60)
    bad.optim.learning_rate = 1e38  # overflows to inf/nan within a few steps
    with pytest.raises(loop.NonFiniteLossError, match="Last good checkpoint: step 40"):
        loop.train_and_evaluate(bad, str(tmp_path), allow_config_change=True)
    step, params = _final_params(tmp_path)
    assert step == 40 and all(np.all(np.isfinite(p)) for p in params)


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


@pytest.mark.slow  # a runner process that trains; test_compiles runs the runner too
def test_runner_trains_and_reports_backend(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "backend cpu" in result.stderr and "ex/s" in result.stderr
    assert (tmp_path / "metrics.jsonl").exists()


def test_runner_rejects_a_bad_config_with_one_message(tmp_path):
    """The runner's error path (ValueError, OSError, CheckpointError, ... -> one logged
    line, exit 1) in a process; the errors themselves are checked in process below."""
    result = _run(tmp_path, "--config.model.latent_dim=-1")
    assert result.returncode == 1
    assert "latent_dim" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("model.latent_dim", -1, "latent_dim"),
        ("objective.likelihood", "poisson", "likelihood"),
        ("data.name", "cifar", "data.name"),
    ],
)
def test_bad_config_is_a_value_error_before_anything_is_written(
    tmp_path, field, value, message
):
    config = _config(10, write_figures=False)
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=message):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_missing_dataset_is_reported_before_training(isolated_search):
    """Nothing can be found (data_dir, $VAE_JAX_DATA, the cwd and repository fallbacks
    and the cache all point into tmp_path): ``train_and_evaluate``, as the runner calls
    it, fails before writing anything with a ValueError (which the runner reports in
    one line, as the bad configs above) naming the file and every searched directory."""
    config = _config(10, write_figures=False)
    config.data.update(name="frey_faces", data_dir=str(isolated_search / "nowhere"))
    workdir = isolated_search / "run"
    with pytest.raises(data.DataNotFoundError, match="frey_rawface.mat") as err:
        loop.train_and_evaluate(config, str(workdir))
    assert isinstance(err.value, ValueError)
    for searched in data_files.search_dirs(config.data.data_dir):
        assert str(searched) in str(err.value)
    assert not workdir.exists()


def test_unwritable_workdir_is_reported_before_training(tmp_path):
    """An OSError naming the workdir (the runner reports it in one line, as the bad
    config above) from the workdir check, which runs before training."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match=f"Workdir {blocker / 'run'} is not writable"):
        loop.train_and_evaluate(_config(10, write_figures=False), str(blocker / "run"))


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
    config.train.max_skipped_fraction = 1.0  # let it run to the end
    loop.train_and_evaluate(config, str(tmp_path))
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert sum(r.get("train/nonfinite", 0) for r in records) > 0
    step, params = _final_params(tmp_path)
    assert step == 30 and all(np.all(np.isfinite(p)) for p in params)


def test_skip_mode_stops_past_the_skip_budget(tmp_path):
    config = _config(30, write_figures=False, on_nonfinite="skip")
    config.optim.learning_rate = 1e38
    with pytest.raises(loop.NonFiniteLossError, match="max_skipped_fraction = 0.01"):
        loop.train_and_evaluate(config, str(tmp_path))
