"""Contaminated one-class training sets and the MSE vs robust_mse / trimmed_mse study."""

import json

import numpy as np
import pytest

from vae_jax import data as data_lib
from vae_jax.studies import anomaly, contamination

from helpers import make_config


def _labelled_rows(counts):
    """x: [N, 2] rows (label, row index), so each row names its class and origin."""
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    x = np.stack([y, np.arange(len(y))], axis=1).astype(np.float32)
    return x, y


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.2, 0.5])
def test_contaminated_sets_fraction_origin_and_counts(fraction):
    x, y = _labelled_rows((80, 60, 40, 20))
    xs, counts = contamination.contaminated_sets(x, y, [0, 2], fraction, seed=3)
    expected = [round(fraction * n / (1 - fraction)) for n in (80, 40)]
    assert list(counts) == [80 + expected[0], 40 + expected[1]]
    assert xs.shape == (2, counts.max(), 2)
    for i, (c, n) in enumerate([(0, 80), (2, 40)]):
        own, extra = xs[i, :n], xs[i, n : counts[i]]
        np.testing.assert_array_equal(own, x[y == c])  # the class itself, in order
        assert np.all(extra[:, 0] != c)  # contaminants: other classes only
        assert len(set(extra[:, 1])) == len(extra)  # no image drawn twice
        np.testing.assert_array_equal(extra, x[extra[:, 1].astype(int)])  # real rows
        assert np.all(xs[i, counts[i] :] == 0)  # zero padding
        assert abs(len(extra) / counts[i] - fraction) <= 0.5 / counts[i]
    if fraction == 0.2:  # exact here: k = 20 of 100 and 10 of 50
        assert len(extra) / counts[1] == 0.2 and counts[0] == 100


def test_contaminated_sets_nested_over_fractions_and_zero_is_stack_by_class():
    x, y = _labelled_rows((50, 30, 70))
    small, n_small = contamination.contaminated_sets(x, y, [1], 0.1, seed=0)
    large, _ = contamination.contaminated_sets(x, y, [1], 0.3, seed=0)
    np.testing.assert_array_equal(small[0, : n_small[0]], large[0, : n_small[0]])
    other_seed, _ = contamination.contaminated_sets(x, y, [1], 0.3, seed=1)
    assert not np.array_equal(other_seed, large)
    clean, counts = contamination.contaminated_sets(x, y, [0, 1, 2], 0.0, seed=0)
    reference = anomaly.stack_by_class(x, y, [0, 1, 2])
    np.testing.assert_array_equal(clean, reference[0])
    np.testing.assert_array_equal(counts, reference[1])
    with pytest.raises(ValueError, match="fraction"):
        contamination.contaminated_sets(x, y, [0], 1.0, seed=0)


def test_study_on_digits_rows_aurocs_resume_and_figure(tmp_path):
    config = make_config(
        model={"kind": "ae", "hidden": (32,), "latent_dim": 4},
        objective={"robust_scale": 0.03},
        optim={"learning_rate": 1e-2},
        train={"batch_size": 32},
    )
    dataset = data_lib.load_dataset("digits", valid_size=0)
    kwargs = {"fractions": (0.2,), "classes": (0, 1), "num_epochs": 10}
    rows = contamination.contamination_study(
        config, dataset, **kwargs, workdir=tmp_path
    )
    keys = {"objective", "fraction", "robust_scale", "robust_shape", "classes"}
    keys |= {"trim_fraction"}
    keys |= {"num_epochs", "contaminants", "auroc", "mean_auroc", "seconds"}
    assert [(r["objective"], r["fraction"]) for r in rows] == [
        ("mse", 0.2),
        ("robust_mse", 0.2),
        ("trimmed_mse", 0.2),
    ]
    clean = [int(np.sum(dataset.train_labels == c)) for c in (0, 1)]
    for row in rows:
        assert set(row) == keys and set(row["auroc"]) == {0, 1}
        aurocs = np.array(list(row["auroc"].values()))
        assert np.all(np.isfinite(aurocs)) and np.all((0 <= aurocs) & (aurocs <= 1))
        np.testing.assert_allclose(row["mean_auroc"], aurocs.mean())
        want = [round(row["fraction"] * n / (1 - row["fraction"])) for n in clean]
        assert row["contaminants"] == want
        robust = row["objective"] == "robust_mse"
        assert row["robust_scale"] == (0.03 if robust else None)
        trimmed = row["objective"] == "trimmed_mse"  # the study's alpha, not config's
        assert row["trim_fraction"] == (
            contamination.DEFAULT_TRIM_FRACTION if trimmed else None
        )
    assert np.mean([r["mean_auroc"] for r in rows]) > 0.6  # the models learnt
    assert (tmp_path / contamination.FIGURE).stat().st_size > 1000
    saved = json.loads((tmp_path / "robust_mse_fraction_0.2.json").read_text())
    assert saved["settings"]["num_epochs"] == 10
    again = contamination.contamination_study(
        config, dataset, **kwargs, workdir=tmp_path
    )
    assert again == rows  # read back from the JSON files, nothing retrained
    changed = contamination._load_row(
        tmp_path / "mse_fraction_0.2.json", {**saved["settings"], "num_epochs": 3}
    )
    assert changed is None  # other settings: recomputed, not reused
