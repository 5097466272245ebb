"""scripts/reproduce_iwae.py: configs by name (DReG rows, IWAE k = 1 trained once), the
summed training time, and results.md's orderings checked with paired differences
over one test set (the training itself is the slow IWAE tests' and the script's job)."""

import json

import numpy as np
import pytest

import helpers


@pytest.fixture(scope="module")
def script():
    return helpers.load_script("reproduce_iwae")


def _fake_stage(root, name, stage, ll, active_units):
    workdir = root / name
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / f"stage{stage}_ll.npy", ll)
    result = {
        "stage": stage,
        "epochs": 40.0,
        "nll": -float(ll.mean()),
        "nll_stderr": float(ll.std(ddof=1) / np.sqrt(len(ll))),
        "num_samples": 5000.0,
        "num_examples": float(len(ll)),
        "active_units": active_units,
    }
    (workdir / f"stage{stage}.json").write_text(json.dumps(result))


def test_configs_by_name(script):
    assert script.make_config("dreg1_k50", "mnist", 0).objective.name == "iwae_dreg"
    config = script.make_config("iwae2_k5", "mnist", 3)
    assert (config.objective.name, config.objective.num_samples) == ("iwae", 5)
    assert (config.model.stochastic_layers, config.model.latent_dim) == (2, 100)
    assert config.seed == 3
    assert script.make_config("vae1_k50", "mnist", 0).objective.name == "elbo"
    # The defaults train every distinct configuration once, IWAE k = 1 not at all.
    assert set(script.DEFAULT_CONFIGS) == set(script.NAMES) - set(script.SAME_AS)
    assert script.DEFAULT_CONFIGS[0].endswith("_k1")
    assert script.DEFAULT_CONFIGS[-1].startswith("dreg")


def test_train_time_is_the_runs_own_record(script, tmp_path):
    assert script.train_seconds(tmp_path.parent, tmp_path.name) is None
    (tmp_path / "train_seconds.json").write_text('{"seconds": 12.5}')
    assert script.train_seconds(tmp_path.parent, tmp_path.name) == 12.5


def test_paired_difference_cancels_the_spread_over_images(script):
    rng = np.random.default_rng(0)
    difficulty = rng.normal(-90.0, 20.0, 4000)  # shared per-image spread
    better = difficulty + 0.3 + rng.normal(0, 0.1, 4000)
    worse = difficulty + rng.normal(0, 0.1, 4000)
    diff, se = script.paired_nll_difference(better, worse)
    assert diff == pytest.approx(np.mean(worse - better))
    assert diff < 0
    # The paired error is the spread of the differences, not of the images.
    assert se == pytest.approx(np.std(worse - better, ddof=1) / np.sqrt(4000))
    assert se < 0.01 < 20.0 / np.sqrt(4000)


def test_orderings_and_aliases_in_results(script, tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(-90.0, 15.0, 500)
    noise = lambda: rng.normal(0, 0.05, 500)
    # IWAE k = 50 beats k = 5 by 1 nat; IWAE k = 5 is *worse* than VAE k = 5.
    _fake_stage(tmp_path, "iwae1_k50", 3, base + 1.0 + noise(), [30])
    _fake_stage(tmp_path, "iwae1_k5", 3, base + noise(), [22])
    _fake_stage(tmp_path, "vae1_k5", 3, base + 0.2 + noise(), [25])
    _fake_stage(tmp_path, "vae1_k1", 3, base - 0.5 + noise(), [19])
    _fake_stage(tmp_path, "vae1_k1", 7, base + 2.0 + noise(), [20])
    rows = {row[0]: row for row in script.ordering_rows(tmp_path, 3)}
    claim = rows["NLL iwae1_k50 < iwae1_k5"]
    assert claim[2] == "holds"
    assert float(claim[1].split()[0]) == pytest.approx(-1.0, abs=0.02)
    assert float(claim[3].split()[0]) > 50  # 1 nat over a paired SE of ~0.003
    assert rows["NLL iwae1_k5 < vae1_k5"][2] == "does not hold"
    assert rows["active units iwae1_k5 >= vae1_k5"][1:3] == [
        "22 vs 25",
        "does not hold",
    ]
    # Claims with an unevaluated side are left out.
    assert not any("2_k" in claim for claim in rows)

    text = script.write_table(tmp_path, script.NAMES, "mnist", 3)
    assert (tmp_path / "results.md").read_text() == text
    # Every evaluated stage is a row; IWAE k = 1 shows the VAE k = 1 results.
    vae_rows = [line for line in text.splitlines() if line.startswith("| vae1_k1 ")]
    assert len(vae_rows) == 2
    assert "| iwae1_k1 (= vae1_k1) | 7 (40) |" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| iwae1_k50 ")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert (cells[3], cells[5]) == ("84.78", "84.59")  # the paper's, nbip/IWAE's
    assert "holds" in text and "does not hold" in text
