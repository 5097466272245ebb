"""Series as data: the .ts reader, the UCR loader (found, checksummed, with a clear
error naming aeon), synthetic series, and the conv1d encoder/decoder for any length
through the runner."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_checks, data, data_files, data_formats, loop, runs
from vae_jax.models import layers

from helpers import make_config, model_config, tiny_model

TS = """# a comment
@problemName Toy
@univariate true
@classLabel true a b
@data
1.0,2.0,3.0:b
-1.5,0.5,2.5:a
"""


def test_read_ts_parses_rows_and_labels(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(TS)
    x, labels = data_formats.read_ts(path)
    np.testing.assert_array_equal(x, [[1.0, 2.0, 3.0], [-1.5, 0.5, 2.5]])
    assert x.dtype == np.float32 and labels == ["b", "a"]


@pytest.mark.parametrize(
    "row, message", [("1.0,2.0:a\n1.0:b", "equal-length"), ("1.0,x:a", "not a series")]
)
def test_read_ts_rejects_damaged_rows(tmp_path, row, message):
    path = tmp_path / "bad.ts"
    path.write_text("@data\n" + row + "\n")
    with pytest.raises(data.DataCorruptError, match=message):
        data_formats.read_ts(path)


def test_missing_ucr_files_name_the_directories_and_aeon(isolated_search, monkeypatch):
    monkeypatch.setattr(data_files, "aeon_data_dir", lambda: None)
    with pytest.raises(data.DataNotFoundError, match=r"vae_jax\[timeseries\]"):
        data.load_dataset("gunpoint")


def test_ucr_files_with_the_wrong_checksum_are_refused(isolated_search):
    ucr = isolated_search / "env" / "ucr"
    ucr.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        (ucr / f"GunPoint_{split}.ts").write_text(TS)
    with pytest.raises(data.DataCorruptError, match="Checksum mismatch"):
        data.load_dataset("gunpoint")


@pytest.mark.skipif(data_files.aeon_data_dir() is None, reason="aeon not installed")
def test_gunpoint_from_aeon_keeps_the_archive_split():
    ds = data.load_dataset("gunpoint")
    assert ds.image_shape == (150,) and ds.dim == 150
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (45, 5, 150)
    assert set(np.unique(ds.test_labels)) == {0, 1}
    np.testing.assert_allclose(ds.test.mean(axis=1), 0.0, atol=1e-3)  # z-normalised


def test_synthetic_series_has_two_classes_of_waves():
    ds = data.load_dataset("synthetic_series")
    assert ds.train.shape == (512, 50) and ds.image_shape == (50,)
    square = ds.train[ds.train_labels == 1]
    sine = ds.train[ds.train_labels == 0]
    # square waves sit near +-1, sines spread over [-1, 1]
    assert np.mean(np.abs(square) > 0.7) > 0.8 > np.mean(np.abs(sine) > 0.7)


@pytest.mark.parametrize("length", [23, 50])
def test_conv1d_decoder_returns_series_of_any_length(length):
    model, params = tiny_model(
        (length,), architecture="conv1d", conv_features=4, latent_dim=3
    )
    x = jnp.ones((2, length))
    assert model.reconstruct(params, x).shape == (2, length)
    count = sum(p.size for p in jax.tree_util.tree_leaves(params))
    config = model_config(architecture="conv1d", conv_features=4, latent_dim=3)
    assert config_checks.estimate_parameters(config, (length,)) == count


def test_conv1d_refuses_images_and_conv_refuses_series():
    with pytest.raises(ValueError, match="conv1d' needs series"):
        layers.encoder_decoder(model_config(architecture="conv1d"), (8, 8), jnp.float32)
    with pytest.raises(ValueError, match="2-D images"):
        layers.encoder_decoder(model_config(architecture="conv"), (24,), jnp.float32)


def test_runner_trains_a_conv1d_autoencoder_on_series(tmp_path):
    config = make_config(
        "quickstart",
        data={"name": "synthetic_series"},
        model={
            "kind": "ae",
            "architecture": "conv1d",
            "conv_features": 8,
            "latent_dim": 4,
        },
        objective={"name": "mse"},
        train={
            "num_steps": 400,
            "batch_size": 32,
            "log_every": 400,
            "checkpoint_every": 400,
        },
    )
    final = loop.train_and_evaluate(config, str(tmp_path))
    run = runs.load_run(tmp_path)
    baseline = np.mean((run.test - run.train.mean(axis=0)) ** 2)  # per-step mean
    assert final["test/mse"] < 0.5 * baseline
    assert (tmp_path / "reconstructions.png").is_file()
    assert math.isfinite(final["test/mse"])
