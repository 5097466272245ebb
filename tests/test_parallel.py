"""Over forced CPU devices: data-parallel training, a vmapped sweep split over devices
and a 2-process (multi-host) run match one device / one process."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from vae_jax import runs, writer

from helpers import REPO

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from vae_jax.configs import quickstart
    from vae_jax import build, loop, train
    assert jax.device_count() == 8, jax.devices()

    def run(mode):
        config = quickstart.get_config()
        config.data.name = "synthetic"
        config.data.binarize = "dynamic"
        config.train.update(batch_size=64, data_parallel=mode)
        exp = build.build_experiment(config)
        state = exp.init_state()
        runner = exp.chunk_runner()
        losses = []
        for step in (0, 8, 16):
            state, metrics = runner(state, step, 8)
            losses.append(np.asarray(metrics["objective"]))
        return exp, state, np.concatenate(losses)

    exp_one, state_one, loss_one = run("off")
    exp_all, state_all, loss_all = run("on")
    assert exp_one.mesh is None and exp_all.mesh.size == 8
    leaf = jax.tree.leaves(state_all.params)[0]
    assert len(leaf.sharding.device_set) == 8, leaf.sharding
    np.testing.assert_allclose(loss_all, loss_one, rtol=2e-5)
    for a, b in zip(jax.tree.leaves(state_all.params), jax.tree.leaves(state_one.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    print("OK", loss_one[-1], loss_all[-1])
    """
)


SWEEP_SCRIPT = textwrap.dedent(
    """
    import sys, jax, numpy as np
    from absl import logging
    from vae_jax.configs import quickstart
    from vae_jax.sweep import launch
    assert jax.device_count() == 8, jax.devices()
    logging.use_absl_handler()
    logging.set_verbosity(logging.INFO)
    grid = [{"optim.learning_rate": lr, "seed": s} for lr in (1e-3, 3e-3) for s in (0, 1)]

    def fit(mode):
        config = quickstart.get_config()
        config.data.valid_size = 0
        config.model.update(hidden=(16,), latent_dim=4)
        config.train.update(num_steps=10, batch_size=64, steps_per_dispatch=10,
                            log_every=10, eval_every=0, write_figures=False,
                            data_parallel=mode)
        return launch.fit_sweep(config, grid, f"{sys.argv[1]}/{mode}", mode="vmap")

    one, split = fit("off"), fit("auto")
    for (run, _, p1), (_, _, p8) in zip(one, split):
        for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("OK", len(one))
    """
)


def _run_on_eight_devices(script, *args):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_eight_device_data_parallel_matches_single_device():
    result = _run_on_eight_devices(SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


@pytest.mark.slow  # ~1 min: two sweeps compiled for 8 devices
def test_vmapped_sweep_split_over_devices_matches_one_device(tmp_path):
    """4 configs over 4 of the 8 devices (the largest count dividing C)."""
    result = _run_on_eight_devices(SWEEP_SCRIPT, str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK 4" in result.stdout
    assert "4 configs split over 4 devices" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _runner(workdir, devices, *flags):
    command = [
        sys.executable,
        "-m",
        "experiments.run",
        f"--workdir={workdir}",
        "--config=experiments/configs/quickstart.py",
        "--config.train.num_steps=60",
        "--config.train.steps_per_dispatch=20",
        "--config.train.log_every=20",
        "--config.train.checkpoint_every=20",
        "--config.train.eval_every=40",
        "--config.train.write_figures=False",
        *flags,
    ]
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    return subprocess.Popen(
        command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow  # ~1 min: three runner processes
def test_two_processes_train_like_one_process_with_their_devices(tmp_path):
    """``--distributed``: 2 processes x 2 CPU devices (gloo all-reduce between them)
    train as 1 process with 4 devices; process 0 alone writes the metrics."""
    port = _free_port()
    hosts = [
        _runner(
            tmp_path / "two",
            2,
            "--distributed",
            f"--process_id={i}",
            f"--coordinator_address=localhost:{port}",
            "--num_processes=2",
        )
        for i in (0, 1)
    ]
    single = _runner(tmp_path / "one", 4)
    stderrs = []
    for proc in (*hosts, single):
        stderrs.append(proc.communicate(timeout=300)[1])
        assert proc.returncode == 0, stderrs[-1][-3000:]
    assert "devices [CpuDevice(id=0), CpuDevice(id=1), CpuDevice(id=2048)" in stderrs[0]
    records = {
        name: writer.read_metrics(tmp_path / name / "metrics.jsonl")
        for name in ("one", "two")
    }
    assert [r["step"] for r in records["two"]] == [r["step"] for r in records["one"]]
    for a, b in zip(records["one"], records["two"]):
        assert a.keys() == b.keys()
        np.testing.assert_allclose(list(b.values()), list(a.values()), rtol=1e-4)
    restored = {name: runs.load_run(tmp_path / name).state for name in ("one", "two")}
    assert int(restored["one"].step) == int(restored["two"].step) == 60
    for a, b in zip(
        jax.tree.leaves(restored["one"].params), jax.tree.leaves(restored["two"].params)
    ):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
