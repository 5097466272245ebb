"""scripts/zoo_benchmark.py --quick: one configuration per process, scored by the
evaluator, then the tables and figures; a finished configuration is not rerun."""

import json
import math
import subprocess
import sys

import pytest

import helpers
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


def _result(model, library, seed, mse, nll, seconds):
    return {
        "dataset": "mnist",
        "library": library,
        "model": model,
        "seed": seed,
        "mse": mse,
        "nll": nll,
        "prior": {"frechet_distance": 10.0 + seed},
        "gmm": None,
        "active_units": [16],
        "train_wall_seconds": seconds,
    }


def test_seeded_rows_pend_per_seed_and_average_in_the_table(tmp_path):
    bench = helpers.load_script("zoo_benchmark")
    args = bench.parse(["--workdir", str(tmp_path), "--models", "vae", "ae"])
    assert args.seeds == 3
    todo = bench.pending(args)
    # VAE with 3 seeds, the AE once, per dataset; first seeds first.
    assert len(todo) == 2 * 3 + 2
    assert [seed for *_, seed in todo] == [0, 0, 0, 0, 1, 1, 2, 2]
    assert {model for _, model, _, seed in todo if seed} == {"vae"}
    out = bench.config_dir(tmp_path, "mnist", "vae", "vae_jax", 2)
    assert out.name == "vae_seed2"
    out.mkdir(parents=True)
    (out / "result.json").write_text("{}")
    assert ("mnist", "vae", "vae_jax", 2) not in bench.pending(args)

    results = [
        _result("vae", "vae_jax", s, 0.02 + 0.01 * s, 100.0 + s, 10.0 + s)
        for s in range(3)
    ] + [_result("vae", "pythae", s, 0.03, 101.0, 40.0) for s in range(3)]
    table = bench.markdown(results, args)
    (line,) = [row for row in table.splitlines() if row.startswith("| vae (n = 3)")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[0] == "vae (n = 3)"
    assert cells[1] == "0.0300 ± 0.0100"  # mean ± sample sd of 0.02, 0.03, 0.04
    assert cells[2] == "101.00 ± 1.00"
    assert cells[3] == "11.00 ± 1.00"
    assert cells[7:9] == ["0.0300 ± 0.0000", "101.00 ± 0.00"]  # Pythae's columns
    assert cells[-1] == "3.6x"  # 40 s / mean(10, 11, 12) s
    (line,) = [row for row in table.splitlines() if row.startswith("| vae | 3 / 3")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    # vae_jax / Pythae means: MSE, NLL, prior FD, GMM FD, -ELBO, gap (none of the
    # last three), train s, speed-up
    assert cells[2:] == [
        "0.0300 / 0.0300",
        "101.00 / 101.00",
        "11.00 / 11.00",
        "- / -",
        "- / -",
        "- / -",
        "11 / 40",
        "3.6x",
    ]


def test_comparison_over_seeds_gives_the_difference_its_error_and_a_verdict():
    bench = helpers.load_script("zoo_benchmark")
    # means 2 vs 1, variances 1 and 1, n = 3 each: SE = sqrt(2 / 3) = 0.816
    diff, verdict = bench.compare_seeds([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert diff == "+1 ± 0.82" and verdict == "within noise"
    assert bench.compare_seeds([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])[1] == "better"
    assert bench.compare_seeds([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])[1] == "worse"
    assert bench.compare_seeds([1.0], [2.0, 3.0]) is None  # one seed: no spread

    args = bench.parse(["--workdir", "unused", "--models", "vae"])
    results = [
        _result("vae", "vae_jax", s, 0.02, 100.0 + s, 10.0) for s in range(3)
    ] + [_result("vae", "pythae", s, 0.03, 104.0 + s, 40.0) for s in range(3)]
    table = bench.markdown(results, args)
    rows = [r for r in table.splitlines() if r.startswith("| vae | ")]
    by_metric = {r.split("|")[2].strip(): r.split("|")[4:6] for r in rows}
    assert by_metric["nll"][1].strip() == "better"  # -4 nats, SE 0.82
    assert by_metric["prior FD"][1].strip() == "within noise"  # same values
    assert "mse" in by_metric and "GMM FD" not in by_metric  # no GMM results
    assert "inference gap" not in by_metric  # no ELBO in these results

    # -ELBO and the gap -ELBO - NLL it leaves: ours 102 + 2s - (100 + s) = 2 + s,
    # theirs 108 + s - (104 + s) = 4: ours 1 nat tighter on average, SE sqrt(1/3)
    for r in results:
        seed, ours = r["seed"], r["library"] == "vae_jax"
        r["elbo"] = -(102.0 + 2 * seed) if ours else -(108.0 + seed)
    rows = [r for r in bench.markdown(results, args).splitlines()]
    by_metric = {
        r.split("|")[2].strip(): r.split("|")[4:6]
        for r in rows
        if r.startswith("| vae | ")
    }
    assert by_metric["inference gap"][0].strip() == "-1 ± 0.58"
    assert by_metric["-ELBO"][1].strip() == "better"  # -5 nats, SE 1.3


def test_seeded_rows_and_initialisers_are_chosen_by_flags(tmp_path, capsys):
    bench = helpers.load_script("zoo_benchmark")
    flags = ["--workdir", str(tmp_path), "--models", "ae", "--datasets", "mnist"]
    assert len(bench.pending(bench.parse(flags))) == 1  # the AE is not seeded
    args = bench.parse([*flags, "--seeded", "ae", "--kernel_init", "torch_default"])
    assert [seed for *_, seed in bench.pending(args)] == [0, 1, 2]
    assert "--kernel_init" in bench.shared_flags(args)  # reaches each process
    config = bench.row_config("ae", "mnist", 1, False, 0, args.kernel_init)
    assert config.model.kernel_init == "torch_default"
    assert bench.row_config("ae", "mnist", 1, False).model.kernel_init != (
        "torch_default"
    )
    with pytest.raises(SystemExit):
        bench.parse([*flags, "--kernel_init", "torch"])
    assert "choose one of" in capsys.readouterr().err
    args = bench.parse([*flags, "--bias_init", "torch_default"])
    assert "--bias_init" in bench.shared_flags(args)
    config = bench.row_config("ae", "mnist", 1, False, 0, "", args.bias_init)
    assert config.model.bias_init == "torch_default"
    with pytest.raises(SystemExit):
        bench.parse([*flags, "--bias_init", "uniform"])
    assert "choose one of" in capsys.readouterr().err


def test_pythae_weights_load_into_vae_jax_as_the_same_functions(tmp_path):
    """Pythae's state_dict (torch's Linear layout, y = x W^T + b) becomes vae_jax's
    VAE parameters computing the same encoder mean and decoder mean, so vae_jax's
    L_k can score Pythae's models; other trees are refused."""
    import numpy as np

    from vae_jax import build, runs

    bench = helpers.load_script("zoo_benchmark")
    config = bench.row_config("vae", "mnist", 1, True)  # digits: D = 64
    experiment = build.build_experiment(config)
    state = experiment.init_state()
    d, h, k = 64, bench.HIDDEN[0], bench.LATENT
    rng = np.random.default_rng(0)
    shapes = {
        "encoder.hidden": (h, d),
        "encoder.mean": (k, h),
        "encoder.logvar": (k, h),
        "decoder.hidden": (h, k),
        "decoder.out": (d, h),
    }
    weights = {}
    for layer, shape in shapes.items():
        weights[f"{layer}.weight"] = rng.normal(0, 0.1, shape).astype(np.float32)
        weights[f"{layer}.bias"] = rng.normal(0, 0.1, shape[:1]).astype(np.float32)
    params = bench.params_from_pythae(weights, state.params)
    run = runs.Run(tmp_path, experiment, state.replace(params=params))

    def layer(name, x):
        return x @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]

    x = rng.uniform(0, 1, (5, d)).astype(np.float32)
    mean = layer("encoder.mean", np.maximum(layer("encoder.hidden", x), 0))
    np.testing.assert_allclose(run.encode(x), mean, rtol=1e-4, atol=1e-5)
    z = rng.normal(size=(5, k)).astype(np.float32)
    logits = layer("decoder.out", np.maximum(layer("decoder.hidden", z), 0))
    expected = 1 / (1 + np.exp(-logits))  # Pythae's decoder: sigmoid(decoder.out)
    np.testing.assert_allclose(run.decode(z), expected, rtol=1e-4, atol=1e-5)

    transposed = dict(
        weights, **{"encoder.mean.weight": weights["encoder.mean.weight"].T}
    )
    assert bench.params_from_pythae(transposed, state.params) is None
    extra = dict(weights, **{"pseudo_inputs.0.weight": np.zeros((d, 3), np.float32)})
    assert bench.params_from_pythae(extra, state.params) is None
