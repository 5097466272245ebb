"""Series study: injected anomalies, the k-NN and Isolation Forest baselines, the
one-class study on synthetic series, and the 2-D latent map."""

import math

import jax
import numpy as np
import pytest

from vae_jax import data
from vae_jax.studies import cluster_metrics, series


def _waves(n=40, length=24, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    return (
        np.sin(2 * np.pi * t / 8 + phase) + 0.1 * rng.normal(size=(n, length))
    ).astype(np.float32)


def _tiny_configs(num_steps, latent_dim=4):
    return series.model_configs(
        "synthetic_series",
        num_steps=num_steps,
        latent_dim=latent_dim,
        conv_features=4,
        batch_size=32,
    )


@pytest.mark.parametrize(
    "kinds, changed", [(("spike",), 1), (("level_shift",), 6), (("noise_burst",), 6)]
)
def test_injected_anomalies_hit_the_fraction_and_only_their_rows(kinds, changed):
    x = _waves()
    out, is_anomaly = series.injected_anomalies(x, 3, 0.3, kinds)
    assert out.shape == x.shape and out.dtype == np.float32
    assert is_anomaly.sum() == 12  # round(0.3 * 40)
    np.testing.assert_array_equal(out[~is_anomaly], x[~is_anomaly])
    diff = out - x
    for row in diff[is_anomaly]:
        where = np.flatnonzero(row)
        # W = ceil(24 / 4) = 6 contiguous steps (a spike: one of them)
        assert len(where) == changed and where[-1] - where[0] == changed - 1


def test_injected_anomaly_sizes_follow_the_generator():
    x = _waves()
    sigma = x.std(axis=1)
    for magnitude in (1.0, 2.0):
        out, hit = series.injected_anomalies(x, 5, 0.5, ("spike",), magnitude)
        size = np.abs(out - x)[hit].max(axis=1)
        np.testing.assert_allclose(
            size, magnitude * series.SPIKE * sigma[hit], rtol=1e-4
        )
        out, hit = series.injected_anomalies(x, 5, 0.5, ("level_shift",), magnitude)
        shift = (out - x)[hit]
        np.testing.assert_allclose(
            np.abs(shift).max(axis=1), magnitude * series.SHIFT * sigma[hit], rtol=1e-4
        )
        assert (shift > 0).any() and (shift < 0).any()  # both signs occur


def test_injected_kinds_take_turns_and_seeds_are_keys():
    x = _waves()
    out, hit = series.injected_anomalies(x, 7, 0.3)  # 12 rows, 4 of each kind
    changes = np.count_nonzero(out - x, axis=1)[hit]
    assert sorted(changes.tolist()) == [1] * 4 + [6] * 8
    again, hit_again = series.injected_anomalies(x, jax.random.key(7), 0.3)
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(hit_again, hit)
    _, other = series.injected_anomalies(x, 8, 0.3)
    assert (other != hit).any()
    with pytest.raises(ValueError, match="Unknown kinds"):
        series.injected_anomalies(x, 0, 0.1, ("spikes",))


def test_knn_distance_scores_match_a_direct_computation():
    rng = np.random.default_rng(1)
    train, x = rng.normal(size=(30, 7)), rng.normal(size=(10, 7))
    distances = np.linalg.norm(x[:, None, :] - train[None, :, :], axis=-1)  # [10, 30]
    expected = np.sort(distances, axis=1)[:, :4].mean(axis=1)
    np.testing.assert_allclose(series.knn_distance_scores(train, x, k=4), expected)


def test_isolation_forest_scores_far_points_higher():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(200, 5))
    x = np.concatenate([rng.normal(size=(40, 5)), 6.0 + rng.normal(size=(10, 5))])
    scores = series.isolation_forest_scores(train, x, seed=0)
    assert cluster_metrics.auroc(np.arange(50) >= 40, scores) > 0.95


def test_knn_probe_accuracy_is_the_fraction_classified_right():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 20)
    codes = 4.0 * y[:, None] + 0.1 * rng.normal(size=(40, 2))
    assert series.knn_probe_accuracy(codes, y, codes[::2], y[::2]) == 1.0
    flipped = 1 - y[::2]
    flipped[:5] = y[::2][:5]  # 5 of 20 test labels right
    assert series.knn_probe_accuracy(codes, y, codes[::2], flipped) == 0.25


def test_one_class_study_on_synthetic_series(tmp_path):
    rows = series.series_anomaly_study(
        "synthetic_series",
        normal_classes=(0,),
        kinds=("spike", "level_shift"),
        magnitudes=(1.0,),
        configs=_tiny_configs(200),
        workdir=tmp_path,
    )
    by_set = {r["anomalies"]: r for r in rows}
    assert list(by_set) == ["classes", "spike", "level_shift"]
    ds = data.load_dataset("synthetic_series", valid_size=0)
    normal = ds.test_labels == 0
    classes, spike = by_set["classes"], by_set["spike"]
    assert classes["anomaly_rate"] == pytest.approx(np.mean(~normal))
    assert spike["anomaly_rate"] == round(0.5 * normal.sum()) / normal.sum()
    assert math.isnan(classes["magnitude"]) and spike["magnitude"] == 1.0
    # the study's k-NN column is the baseline on the first set (slices line up)
    knn = series.knn_distance_scores(ds.train[ds.train_labels == 0], ds.test)
    assert classes["auroc_knn"] == pytest.approx(cluster_metrics.auroc(~normal, knn))
    # sines vs square waves, and 4-sigma spikes: a briefly trained AE ranks them
    assert classes["auroc_ae"] > 0.9 and spike["auroc_ae"] > 0.9
    assert classes["auroc_vae"] > 0.75 and spike["auroc_vae"] > 0.75
    for row in rows:
        assert row["mse_ae_anomalous"] > row["mse_ae_normal"] > 0
    assert (tmp_path / "series_injected_synthetic_series.png").is_file()


def test_latent_map_writes_its_figures_and_a_probe_in_range(tmp_path):
    configs = {"ae": _tiny_configs(300, latent_dim=2)["ae"]}
    rows = series.series_latent_map(
        "synthetic_series", configs=configs, workdir=tmp_path
    )
    raw, ae = rows
    assert raw["representation"] == "raw series" and raw["latent_dim"] == 50
    assert ae["representation"] == "ae codes" and ae["latent_dim"] == 2
    assert 0.5 < ae["knn_probe"] <= 1.0 and 0.5 < raw["knn_probe"] <= 1.0
    ds = data.load_dataset("synthetic_series", valid_size=0)
    assert ae["test_mse"] < 0.85 * np.mean(np.square(ds.test))  # beats predicting 0
    for name in ("series_latent_synthetic_series", "series_recon_ae_synthetic_series"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
