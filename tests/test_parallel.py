"""Data-parallel training over 8 forced CPU devices matches one device."""

import os
import pathlib
import subprocess
import sys
import textwrap

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


def test_eight_device_data_parallel_matches_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
