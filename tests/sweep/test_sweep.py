"""Sweeps: parsing, vmapped training == separate runs, array-job indices, results, resume."""

import csv
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import build, loop, objectives, optim, train, writer
from vae_jax.configs import quickstart
from vae_jax.sweep import launch, results, spec, vmapped

from helpers import REPO, make_config

# Three configs differing in numeric hyper-parameters only; one warms beta up.
SWEEP = [
    {"optim.learning_rate": 1e-3, "objective.beta": 1.0, "seed": 0},
    {
        "optim.learning_rate": 3e-3,
        "objective.beta": 0.5,
        "seed": 1,
        "objective.kl_warmup_steps": 10,
    },
    {"optim.learning_rate": 2e-3, "objective.beta": 2.0, "seed": 2},
]


def _base(num_steps=40):
    """Digits without a validation split: 1500 / 50 = 30 steps per epoch."""
    return make_config(
        "quickstart",
        data={"valid_size": 0},
        model={"hidden": (16,), "latent_dim": 4},
        optim={"schedule": "warmup_cosine", "warmup_steps": 5},
        train={
            "num_steps": num_steps,
            "batch_size": 50,
            "steps_per_dispatch": 10,
            "log_every": 10,
            "checkpoint_every": 100,
            "eval_every": 0,
            "write_figures": False,
        },
    )


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same sweep trained vmapped and by separate ``loop.train_and_evaluate`` runs."""
    root = tmp_path_factory.mktemp("sweeps")
    rows = {
        mode: launch.run_sweep(_base(), SWEEP, root / mode, mode=mode)
        for mode in ("vmap", "process")
    }
    return root, rows


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _final_params(workdir, run):
    _, state = launch.final_state(run, workdir)
    return int(state.step), state.params


# ------------------------------------------------------------------ specification
def test_parse_sweep_is_a_typed_cartesian_product():
    runs = spec.parse_sweep(
        "optim.learning_rate=1e-3,3e-4; objective.beta=1,2 ;seed=0;"
        "model.hidden=(16,),(8,4);train.write_figures=false",
        quickstart.get_config(),
    )
    assert len(runs) == 8
    assert runs[0] == {
        "optim.learning_rate": 1e-3,
        "objective.beta": 1.0,
        "seed": 0,
        "model.hidden": (16,),
        "train.write_figures": False,
    }
    assert runs[1]["model.hidden"] == (8, 4)  # the last axis varies fastest
    assert runs[-1]["optim.learning_rate"] == 3e-4
    assert all(
        type(r["objective.beta"]) is float and type(r["seed"]) is int for r in runs
    )


@pytest.mark.parametrize(
    "sweep, message",
    [
        ("objective.betta=1,2", "did you mean 'objective.beta'"),
        ("seed=abc", "Cannot parse 'abc' as seed"),
        ("seed=1.5", "Cannot parse '1.5' as seed"),
        ("optim.learning_rate=fast", "Cannot parse 'fast'"),
        ("objective.beta", "is not 'field=v1,v2,...'"),
        ("seed=0;seed=1", "appears twice"),
        ("optim=1", "Unknown config field 'optim'"),
        (" ; ", "Empty sweep"),
    ],
)
def test_bad_sweeps_raise_one_clear_error(sweep, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        spec.parse_sweep(sweep, quickstart.get_config())


def test_get_sweep_from_config_file(tmp_path):
    path = tmp_path / "my_sweep.py"
    path.write_text(
        "from vae_jax.configs import quickstart\n"
        "def get_config():\n    return quickstart.get_config()\n"
        "def get_sweep():\n"
        "    return [{'objective.beta': b, 'seed': s} for b in (0.5, 1.0) for s in (0, 1)]\n"
    )
    overrides = spec.load_get_sweep(str(path))
    assert overrides[1] == {"objective.beta": 0.5, "seed": 1} and len(overrides) == 4
    runs = spec.make_runs(quickstart.get_config(), overrides)
    assert [r.config.objective.beta for r in runs] == [0.5, 0.5, 1.0, 1.0]
    assert runs[0].name == "beta=0.5_seed=0"
    (tmp_path / "plain.py").write_text("def get_config():\n    return None\n")
    assert spec.load_get_sweep(str(tmp_path / "plain.py")) is None


def test_make_runs_validates_every_config_and_names_are_safe():
    base = quickstart.get_config()
    with pytest.raises(ValueError, match="(?s)beta=-1.0.*objective.beta"):
        spec.make_runs(base, [{"objective.beta": 1.0}, {"objective.beta": -1.0}])
    with pytest.raises(ValueError, match="Bad sweep value objective.beta='x'"):
        spec.make_runs(base, [{"objective.beta": "x"}])
    with pytest.raises(ValueError, match="twice"):
        spec.make_runs(base, [{"seed": 1}, {"seed": 1}])
    name = spec.run_name(
        {
            "model.hidden": (64, 32),
            "data.name": "digits",
            "model.name": "a b/c",
            "optim.learning_rate": 3e-4,
        }
    )
    assert name == "hidden=64-32_data.name=digits_model.name=a-b-c_learning_rate=0.0003"
    assert spec.run_name({}) == "base"


@pytest.mark.parametrize(
    "sweep, message",
    [
        (
            "optim.learning_rate=1e-3,0.001",
            (
                "Sweep values '1e-3' and '0.001' of optim.learning_rate are the same "
                "value (0.001); list it once."
            ),
        ),
        (
            "data.data_dir=runs/a,runs?a",
            (
                "Sweep values 'runs/a' and 'runs?a' of data.data_dir both become "
                "'runs-a' in run names"
            ),
        ),
    ],
)
def test_sweep_values_with_one_run_name_are_named(sweep, message):
    with pytest.raises(ValueError) as err:
        spec.parse_sweep(sweep, quickstart.get_config())
    assert message in str(err.value) and "twice" not in str(err.value)


def test_get_sweep_values_with_one_run_name_are_named():
    base = quickstart.get_config()
    sweep = [
        {"data.data_dir": "runs/a", "seed": 0},
        {"data.data_dir": "runs?a", "seed": 0},
    ]
    with pytest.raises(ValueError) as err:
        spec.make_runs(base, sweep)
    message = str(err.value)
    assert "'runs/a' and 'runs?a' of data.data_dir" in message
    assert "same run name 'data_dir=runs-a_seed=0'" in message
    assert "letters, digits and ._=+-" in message  # how to fix it


def test_sweep_seed_out_of_range_is_one_line_naming_it():
    """1e30 parses exactly (not as float's 1000000000000000019884624838656) and is
    rejected with every config before any trains."""
    base = quickstart.get_config()
    overrides = spec.parse_sweep("seed=1e30,0", base)
    assert overrides == [{"seed": 10**30}, {"seed": 0}]
    with pytest.raises(ValueError) as err:
        spec.make_runs(base, overrides)
    message = str(err.value)
    assert f"config.seed={10**30} must be an integer in [0, 2**32 - 1" in message
    assert "\n" not in message


# ------------------------------------------------------------------ vmap == separate runs
@pytest.mark.parametrize(
    "name, schedule",
    [
        ("adam", "constant"),
        ("adam", "cosine"),
        ("adamw", "warmup_cosine"),
        ("sgd", "burda"),
    ],
)
def test_rate_scaled_update_matches_optax_at_that_rate(name, schedule):
    optim_config = quickstart.get_config().optim
    optim_config.update(
        name=name,
        schedule=schedule,
        learning_rate=3e-3,
        warmup_steps=2,
        weight_decay=0.1,
        grad_clip_norm=1.0,
    )
    tx = optim.make_optimizer(optim_config, total_steps=10, steps_per_epoch=1)
    optim_config.learning_rate = 1.0
    unit = optim.make_optimizer(optim_config, 10, 1)
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (5, 3))}
    single = train.TrainState.create(apply_fn=None, params=params, tx=tx, key=None)
    scaled = vmapped.SweepState.create(
        apply_fn=None,
        params=params,
        tx=unit,
        key=None,
        hyper={"learning_rate": jnp.float32(3e-3)},
    )
    for i in range(6):
        grads = {"w": jax.random.normal(jax.random.PRNGKey(i + 1), (5, 3))}
        single, scaled = (s.apply_gradients(grads=grads) for s in (single, scaled))
    if schedule == "constant":
        np.testing.assert_array_equal(single.params["w"], scaled.params["w"])
    np.testing.assert_allclose(single.params["w"], scaled.params["w"], rtol=1e-6)
    assert jax.tree.structure(single.opt_state) == jax.tree.structure(scaled.opt_state)


@pytest.mark.parametrize("name", ["denoising_mse", "sparse_mse", "robust_mse", "elbo"])
def test_traced_hyper_parameters_match_the_bound_objective(name):
    config = _base()
    config.objective.update(
        name=name,
        noise_level=0.2,
        sparsity_target=0.1,
        sparsity_weight=0.5,
        kl_warmup_steps=7,
        beta=1.5,
        robust_scale=0.05,
    )
    if name != "elbo":
        config.model.update(kind="ae", code_activation="sigmoid")
    exp = build.build_experiment(config)
    hyper = vmapped.hyper_values(config)
    params, x, key = exp.init_state().params, exp.train_x[:32], jax.random.PRNGKey(3)

    @jax.jit
    def losses(step):
        hparams = objectives.make_hparams(config, levels=hyper)(step)
        loss_one = vmapped.hyper_loss_one(exp, hyper)
        got = objectives.batch_mean(loss_one)(params, x, key, hparams)
        bound = objectives.batch_mean(exp.loss_one)(
            params, x, key, exp.hparams_fn(step)
        )
        return got[0], bound[0]

    for step in (0, 3, 20):
        np.testing.assert_allclose(*losses(jnp.asarray(step, jnp.int32)), rtol=1e-6)


def test_vmapped_sweep_matches_separate_runs(sweeps):
    root, rows = sweeps
    fitted = launch.fit_sweep(_base(), SWEEP, root / "vmap")  # finished: no training
    assert [run.name for run, _, _ in fitted] == [r["name"] for r in rows["vmap"]]
    for run, _, params_fit in fitted:
        step_v, params_v = _final_params(root / "vmap", run)
        step_p, params_p = _final_params(root / "process", run)
        assert step_v == step_p == 40
        for a, b, c in zip(*map(jax.tree.leaves, (params_v, params_p, params_fit))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(a, c)
    for row_v, row_p in zip(rows["vmap"], rows["process"]):
        assert row_v["status"] == row_p["status"] == "done"
        for key in ("train/objective", "train/kl", "test/kl", "test/elbo"):
            np.testing.assert_allclose(row_v[key], row_p[key], rtol=1e-5)
    losses = [r["test/elbo"] for r in rows["vmap"]]
    assert len(set(losses)) == 3  # each config trained with its own hyper-parameters


def test_vmapped_sweep_evaluates_the_validation_split_during_training(tmp_path):
    """``eval_every`` evaluates the validation split, the test split once at the end;
    the records name the beta-weighted ``objective`` and the beta = 1 ``elbo``."""
    base = _base(20)
    base.data.valid_size = 100
    base.train.eval_every = 10
    launch.run_sweep(base, SWEEP[:2], tmp_path, mode="vmap")
    for overrides in SWEEP[:2]:
        path = tmp_path / spec.run_name(overrides) / "metrics.jsonl"
        records = writer.read_metrics(path)
        assert [r["step"] for r in records if "valid/elbo" in r] == [10, 20]
        assert [r["step"] for r in records if "test/elbo" in r] == [20]
        assert not [k for r in records for k in r if k.endswith("loss")]
        last = [r for r in records if "train/objective" in r][-1]  # past the warm-up
        beta = overrides["objective.beta"]
        weighted = -last["train/elbo"] - (1 - beta) * last["train/kl"]
        assert last["train/objective"] == pytest.approx(weighted, rel=1e-5)


def test_results_table_puts_the_headline_metrics_first(tmp_path):
    (run,) = spec.make_runs(_base(), SWEEP[:1])
    record = {
        "step": 40,
        "train/grad_norm": 3.0,
        "train/kl": 2.0,
        "train/objective": 90.0,
        "train/elbo": -90.0,
        "test/kl": 2.5,
        "test/elbo": -95.0,
    }
    (tmp_path / run.name).mkdir()
    (tmp_path / run.name / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    results.write_results([run], tmp_path)
    header = (tmp_path / "results.md").read_text().splitlines()[0]
    columns = [c.strip() for c in header.strip("|").split("|")]
    metrics = [c for c in columns if "/" in c]
    assert metrics == [
        "train/elbo",
        "train/objective",
        "train/kl",
        "train/grad_norm",
        "test/elbo",
        "test/kl",
    ]


def test_results_plot_draws_the_configs_above_the_mean_line(tmp_path, monkeypatch):
    from vae_jax.plots import plt

    betas = (0.5, 0.5, 1.0, 2.0)
    rows = [
        {"name": f"r{i}", "objective.beta": b, "status": "done", "test/elbo": -90.0 - i}
        for i, b in enumerate(betas)
    ]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    results.plot_results(rows, ["objective.beta"], tmp_path / "results.png")
    (ax,) = figures[0].axes
    (points,) = ax.collections
    (line,) = ax.lines
    assert points.get_zorder() > line.get_zorder()
    assert len(points.get_offsets()) == 4 and len(line.get_xdata()) == 3
    assert "final test/elbo" in ax.get_ylabel() and "nats per image" in ax.get_ylabel()
    monkeypatch.undo()
    plt.close(figures[0])


def test_vmap_refuses_configs_that_differ_in_shape_or_kind(tmp_path):
    base = _base()
    with pytest.raises(ValueError, match="differ in model.latent_dim"):
        launch.run_sweep(
            base,
            [{"model.latent_dim": 2}, {"model.latent_dim": 4}],
            tmp_path,
            mode="vmap",
        )
    runs = spec.make_runs(
        base,
        [
            {"objective.likelihood": "gaussian", "seed": 0},
            {"objective.likelihood": "bernoulli", "seed": 1},
        ],
    )
    with pytest.raises(ValueError, match="objective.likelihood"):
        spec.check_vmappable(runs)
    assert [len(g) for g in spec.vmap_groups(runs)] == [1, 1]
    assert not list(tmp_path.iterdir())  # refused before anything was written


# ------------------------------------------------------------------ array jobs, results
def test_sweep_index_from_flag_or_slurm(tmp_path, monkeypatch):
    assert spec.sweep_index(None, 3, {}) is None
    assert spec.sweep_index(1, 3, {"SLURM_ARRAY_TASK_ID": "2"}) == 1
    assert spec.sweep_index(None, 3, {"SLURM_ARRAY_TASK_ID": "2"}) == 2
    for index, env, source in [
        (3, {}, "--sweep_index=3"),
        (-1, {}, "--sweep_index=-1"),
        (None, {"SLURM_ARRAY_TASK_ID": "7"}, "SLURM_ARRAY_TASK_ID=7"),
    ]:
        with pytest.raises(ValueError, match=f"{source} is out of range.*3 configs"):
            spec.sweep_index(index, 3, env)
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID='x' is not an integer"):
        spec.sweep_index(None, 3, {"SLURM_ARRAY_TASK_ID": "x"})
    trained = []
    monkeypatch.setattr(
        launch, "train_run", lambda run, workdir: trained.append(run.name)
    )
    rows = launch.run_sweep(_base(), SWEEP, tmp_path, mode="auto", index=2)
    assert trained == [spec.run_name(SWEEP[2])]
    assert [r["status"] for r in rows] == ["pending"] * 3


def test_results_written_and_finished_configs_skipped(sweeps, monkeypatch):
    root, _ = sweeps
    for mode in ("vmap", "process"):
        table = _read_csv(root / mode / "results.csv")
        assert [r["name"] for r in table] == [spec.run_name(o) for o in SWEEP]
        assert {
            "optim.learning_rate",
            "seed",
            "status",
            "train/objective",
            "train/elbo",
            "test/elbo",
        } <= set(table[0])
        assert float(table[1]["optim.learning_rate"]) == 3e-3
        assert (root / mode / "results.md").read_text().count("| done |") == 3
        assert (root / mode / "results.png").stat().st_size > 10_000
    refuse = lambda *args: pytest.fail("a finished config was trained again")
    monkeypatch.setattr(loop, "train_and_evaluate", refuse)
    monkeypatch.setattr(vmapped, "train_vmapped", refuse)
    for mode in ("vmap", "process"):
        rows = launch.run_sweep(_base(), SWEEP, root / mode, mode=mode)
        assert [r["status"] for r in rows] == ["done"] * 3
    longer = spec.make_runs(_base(num_steps=50), SWEEP)
    assert not any(results.is_finished(run, root / "vmap") for run in longer)


def _app(workdir, *flags):
    """``python -m experiments.sweep`` on a tiny quickstart, from the repository."""
    command = [
        sys.executable,
        "-m",
        "experiments.sweep",
        f"--workdir={workdir}",
        "--config=experiments/configs/quickstart.py",
        "--config.train.num_steps=20",
        "--config.model.hidden=(8,)",
        "--config.train.write_figures=False",
        "--config.train.log_every=10",
        "--config.data.valid_size=0",
        "--config.train.batch_size=50",
        *flags,
    ]
    return subprocess.run(
        command, cwd=REPO, check=False, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a process that compiles and trains; run_sweep is tested above
def test_app_trains_a_sweep(tmp_path):
    ok = _app(tmp_path, "--sweep=objective.beta=0.5,1", "--mode=vmap")
    assert ok.returncode == 0, ok.stderr[-2000:]
    table = _read_csv(tmp_path / "results.csv")
    assert [(r["objective.beta"], r["status"]) for r in table] == [
        ("0.5", "done"),
        ("1.0", "done"),
    ]


def test_app_rejects_bad_input_with_one_message(tmp_path):
    bad = _app(tmp_path, "--sweep=seed=0,1", "--sweep_index=5")
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.splitlines() if line.startswith("E")]
    assert len(errors) == 1 and "--sweep_index=5 is out of range" in errors[0]


def test_app_rejects_an_invalid_sweep_value_before_training(tmp_path):
    bad = _app(tmp_path, "--sweep=seed=1e30,0")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("E")]
    assert (
        len(errors) == 1 and "config.seed=1000000000000000000000000000000" in errors[0]
    )
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_finished_run_survives_added_and_removed_config_fields(tmp_path):
    """A config field added to (or removed from) the library later does not make a
    finished run stale; a changed value of a field both configs have does."""
    (run,) = spec.make_runs(_base(), SWEEP[:1])
    (tmp_path / run.name).mkdir()
    results.write_done(run, tmp_path / run.name, {"test/elbo": -1.0})
    assert results.is_finished(run, tmp_path)
    done_path = tmp_path / run.name / "done.json"
    record = json.loads(done_path.read_text())
    del record["config"]["objective"]["beta"]  # a field the run predates
    record["config"]["train"]["retired_field"] = 3  # a field since removed
    done_path.write_text(json.dumps(record))
    assert results.is_finished(run, tmp_path)
    record["config"]["optim"]["learning_rate"] *= 2
    done_path.write_text(json.dumps(record))
    assert results.config_changes(record["config"], run.config) == [
        "optim.learning_rate"
    ]
    assert not results.is_finished(run, tmp_path)
