"""The VQ-VAE's exponential-moving-average codebook (van den Oord et al. 2017, App. A.1):
the batch statistics reach the optimizer exactly as gradients, steps of the train step
match the EMA formulas in NumPy, the other parameters keep their optimizer, runs
resume bit for bit, and the config checks and sweeps guard the option."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import build, config_checks, loop, objectives, optim, runs, train
from vae_jax import vector_quantize as vq
from vae_jax.sweep import spec

from helpers import make_config

N, C, M, B, DECAY = 4, 3, 8, 32, 0.9


def _config(update="ema", **train_fields):
    config = make_config(
        "vqvae_fashion",
        data={"name": "digits"},
        model={"architecture": "mlp", "hidden": (16,)},
        objective={"codebook_update": update, "ema_decay": DECAY},
        train={"num_steps": 2, "batch_size": B, "write_figures": False},
    )
    config.model.update(num_latents=N, code_dim=C, codebook_size=M)
    config.train.update(train_fields)
    return config


@pytest.fixture(scope="module")
def experiment():
    return build.build_experiment(_config())


def _ema_state(opt_state) -> vq.EmaCodebookState:
    (found,) = [
        s
        for s in jax.tree.leaves(
            opt_state, is_leaf=lambda s: isinstance(s, vq.EmaCodebookState)
        )
        if isinstance(s, vq.EmaCodebookState)
    ]
    return found


def _np_statistics(model, params, batch):
    """(n [M], s [M, C]) in float64 from the nearest entries found by brute force."""
    z_e = np.asarray(model.code_vectors(params, batch), np.float64).reshape(-1, C)
    codebook = np.asarray(params["params"]["codebook"], np.float64)
    k = ((z_e[:, None, :] - codebook) ** 2).sum(-1).argmin(-1)  # [B * N]
    np.testing.assert_array_equal(k, model.code_indices(params, batch).reshape(-1))
    counts = np.bincount(k, minlength=M).astype(np.float64)
    sums = np.zeros((M, C))
    np.add.at(sums, k, z_e)
    return counts, sums


def test_gradients_carry_the_batch_statistics_and_the_value_is_unchanged(experiment):
    """d loss / d e = s and d loss / d p = n (sums over the B N code vectors, not
    means), and the loss is the reconstruction and commitment terms alone."""
    exp = experiment
    params, batch = exp.init_state().params, exp.train_x[:B]
    loss = objectives.batch_mean(exp.loss_one)
    grad_fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (value, aux), grads = grad_fn(params, batch, jax.random.key(0), {})
    counts, sums = _np_statistics(exp.model, params, batch)
    assert counts.sum() == B * N and (counts > 0).sum() > 2
    np.testing.assert_array_equal(grads["params"]["count_probe"], counts)
    np.testing.assert_allclose(grads["params"]["codebook"], sums, rtol=1e-5, atol=1e-6)
    expected = aux["squared_error"] + 0.25 * aux["commitment_loss"]
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    assert aux["codebook_loss"] > 0  # reported, not minimised


def test_two_train_steps_follow_the_ema_formulas(experiment):
    """Each step: N <- g N + (1-g) n, m <- g m + (1-g) s, e = m / N~ with Sonnet's
    Laplace smoothing, N and m in the optimizer state; the probe stays 0."""
    exp = experiment
    state = exp.init_state()
    step = train.make_train_step(exp.loss_one, exp.hparams_fn)
    counts_ema, sums_ema = np.zeros(M), np.zeros((M, C))
    for i in range(2):
        batch = exp.train_x[i * B : (i + 1) * B]
        counts, sums = _np_statistics(exp.model, state.params, batch)
        counts_ema = DECAY * counts_ema + (1 - DECAY) * counts
        sums_ema = DECAY * sums_ema + (1 - DECAY) * sums
        total = counts_ema.sum()
        eps = vq.LAPLACE_EPSILON
        smoothed = (counts_ema + eps) / (total + M * eps) * total
        state, metrics = step(state, batch)
        assert metrics["nonfinite"] == 0
        ema = _ema_state(state.opt_state)
        np.testing.assert_allclose(ema.counts, counts_ema, rtol=1e-6)
        np.testing.assert_allclose(ema.sums, sums_ema, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            state.params["params"]["codebook"],
            sums_ema / smoothed[:, None],
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_array_equal(state.params["params"]["count_probe"], 0.0)
        if i == 0:  # an entry the first batch leaves unused goes to 0 (m starts at 0)
            unused = counts == 0
            assert unused.any()
            np.testing.assert_array_equal(state.params["params"]["codebook"][unused], 0)


def test_other_parameters_keep_the_configured_optimizer_and_its_clipping():
    """The EMA leaves leave the optimizer's chain alone: clipping by global norm and
    Adam see the other parameters only."""
    optim_config = _config().optim
    optim_config.grad_clip_norm = 0.1
    params = {"params": {"codebook": jnp.ones((M, C)), "count_probe": jnp.zeros(M)}}
    params["params"]["encoder"] = {"kernel": jnp.full((3, 2), 0.5)}
    grads = {
        "params": {
            "codebook": jnp.full((M, C), 100.0),  # would dominate a shared clip
            "count_probe": jnp.full(M, 50.0),
            "encoder": {"kernel": jnp.arange(6.0).reshape(3, 2)},
        }
    }
    tx = optim.make_optimizer(optim_config, 10, codebook_ema_decay=DECAY)
    updates, _ = tx.update(grads, tx.init(params), params)
    plain = optim.make_optimizer(optim_config, 10)
    rest = {"encoder": params["params"]["encoder"]}
    expected, _ = plain.update(
        {"encoder": grads["params"]["encoder"]}, plain.init(rest), rest
    )
    np.testing.assert_allclose(
        updates["params"]["encoder"]["kernel"], expected["encoder"]["kernel"], rtol=1e-6
    )
    np.testing.assert_array_equal(updates["params"]["count_probe"], 0.0)
    np.testing.assert_allclose(  # e_new - e_old = s / n - e_old after one update
        updates["params"]["codebook"], 100.0 / 50.0 - 1.0, rtol=1e-5
    )


def test_gradient_mode_has_no_probe_and_one_optimizer():
    exp = build.build_experiment(_config("gradient"))
    state = exp.init_state()
    assert "count_probe" not in state.params["params"]
    assert not isinstance(state.opt_state, optax.transforms.PartitionState)
    assert exp.tx is not None and not any(
        isinstance(s, vq.EmaCodebookState)
        for s in jax.tree.leaves(
            state.opt_state, is_leaf=lambda s: isinstance(s, vq.EmaCodebookState)
        )
    )


def test_runner_trains_checkpoints_and_resumes_bit_for_bit(tmp_path):
    """10 steps straight vs 5, then a rerun to 10 from the checkpoint at 5: the same
    params and EMA statistics, bit for bit, and a finite evaluation."""
    fields = {"log_every": 5, "checkpoint_every": 5, "steps_per_dispatch": 5}
    final = loop.train_and_evaluate(
        _config(num_steps=10, **fields), str(tmp_path / "a")
    )
    assert np.isfinite(final["test/squared_error"])
    loop.train_and_evaluate(_config(num_steps=5, **fields), str(tmp_path / "b"))
    loop.train_and_evaluate(_config(num_steps=10, **fields), str(tmp_path / "b"))
    a, b = runs.load_run(tmp_path / "a"), runs.load_run(tmp_path / "b")
    assert a.step == b.step == 10
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_array_equal(x, y)
    ema_a, ema_b = _ema_state(a.state.opt_state), _ema_state(b.state.opt_state)
    np.testing.assert_array_equal(ema_a.counts, ema_b.counts)
    np.testing.assert_array_equal(ema_a.sums, ema_b.sums)
    assert ema_a.counts.sum() > 0


@pytest.mark.parametrize(
    "objective, message",
    [
        ({"ema_decay": 0.0}, "ema_decay"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_decay": -0.5}, "ema_decay"),
        ({"ema_decay": 1.5}, "ema_decay"),
        ({"codebook_update": "adam"}, "codebook_update"),
    ],
)
def test_bad_ema_configs_are_rejected(objective, message):
    config = _config()
    config.objective.update(objective)
    with pytest.raises(ValueError, match=message):
        config_checks.validate_config(config)


def test_ema_needs_the_vq_objective_and_good_configs_pass():
    config_checks.validate_config(_config())
    config_checks.validate_config(_config("gradient"))
    config = make_config(objective={"codebook_update": "ema"})  # a VAE
    with pytest.raises(ValueError, match="needs objective.name in"):
        config_checks.validate_config(config)


def test_sweeps_train_ema_runs_as_processes():
    """vmapped sweeps scale every update by the learning rate: an EMA run is a group
    of its own, and --mode=vmap refuses it."""
    base = _config()
    other = copy.deepcopy(base)
    other.optim.learning_rate = 3e-4
    ema = [spec.Run("a", {}, base), spec.Run("b", {}, other)]
    assert [len(g) for g in spec.vmap_groups(ema)] == [1, 1]
    with pytest.raises(ValueError, match="EMA codebook"):
        spec.check_vmappable(ema)
    plain = [spec.Run(r.name, {}, copy.deepcopy(r.config)) for r in ema]
    for run in plain:
        run.config.objective.codebook_update = "gradient"
    assert [len(g) for g in spec.vmap_groups(plain)] == [2]
    spec.check_vmappable(plain)
