"""Over 8 forced CPU devices: data-parallel training and a vmapped sweep split over
devices match one device."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from experiments.configs import quickstart
    from vae_jax import experiment, train, loop
    assert jax.device_count() == 8, jax.devices()

    def run(mode):
        config = quickstart.get_config()
        config.data.name = "synthetic"
        config.data.binarize = "dynamic"
        config.train.update(batch_size=64, data_parallel=mode)
        exp = experiment.build_experiment(config)
        state = exp.init_state()
        runner = exp.chunk_runner()
        losses = []
        for step in (0, 8, 16):
            state, metrics = runner(state, step, 8)
            losses.append(np.asarray(metrics["loss"]))
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
    from experiments.configs import quickstart
    from vae_jax import sweep
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
        return sweep.fit_sweep(config, grid, f"{sys.argv[1]}/{mode}", mode="vmap")

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
