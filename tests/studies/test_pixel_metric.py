"""Limitation 1: the transformations, the distances against direct computations, and
the MSE optimum E[x | z] as the blur of a trained AE's reconstructions."""

import numpy as np
import pytest

from vae_jax import data
from vae_jax.studies import autoencoders, pixel_metric

from helpers import make_config


def _dot(side=7, row=3, col=3):
    image = np.zeros((1, side, side), np.float32)
    image[0, row, col] = 1.0
    return image


def test_shift_moves_every_pixel_right_by_whole_pixels():
    moved = pixel_metric.shift_images(_dot(), 2)
    np.testing.assert_allclose(moved, _dot(col=5), atol=1e-6)


def test_rotation_by_a_quarter_turn_is_rot90():
    image = np.random.default_rng(0).uniform(size=(2, 9, 9)).astype(np.float32)
    turned = pixel_metric.rotate_images(image, 90)
    np.testing.assert_allclose(turned, np.rot90(image, 1, axes=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("steps, lit", [(0, 1), (1, 5), (2, 13)])
def test_each_dilation_grows_a_dot_by_a_cross(steps, lit):
    assert np.sum(pixel_metric.thicken_strokes(_dot(), steps) > 0) == lit


def test_unrelated_partners_have_another_label():
    labels = np.repeat(np.arange(4), 25)
    partners = pixel_metric.unrelated_partners(labels, seed=3)
    assert np.all(labels[partners] != labels)
    assert len(np.unique(partners)) > 20  # drawn, not one fixed partner


class _PixelNet:
    """A stand-in classifier: features = 2 x pixels, always says class 0."""

    def features(self, x):
        return 2.0 * x

    def probabilities(self, x):
        return np.tile([1.0, 0.0], (len(x), 1))


def test_distance_curves_match_direct_computation():
    rng = np.random.default_rng(1)
    images = rng.uniform(size=(12, 6, 6)).astype(np.float32)
    labels = np.arange(12) % 2
    transform = {"shift": (pixel_metric.shift_images, (0, 1), "px")}
    rows = pixel_metric.distance_curves(images, labels, _PixelNet(), transform, seed=5)
    partners = pixel_metric.unrelated_partners(labels, 5)
    moved = pixel_metric.shift_images(images, 1)
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64)
    pixel = np.mean((flat(images) - flat(moved)) ** 2)
    pixel_far = np.mean((flat(images) - flat(images[partners])) ** 2)
    feat = np.mean(np.linalg.norm(2 * flat(images) - 2 * flat(moved), axis=1))
    feat_far = np.mean(
        np.linalg.norm(2 * flat(images) - 2 * flat(images[partners]), axis=1)
    )
    assert rows[0]["pixel_ratio"] == 0 and rows[0]["feature_ratio"] == 0
    np.testing.assert_allclose(rows[1]["pixel_ratio"], pixel / pixel_far, rtol=1e-6)
    np.testing.assert_allclose(rows[1]["feature_ratio"], feat / feat_far, rtol=1e-6)
    assert rows[1]["classifier_accuracy"] == pytest.approx(
        0.5
    )  # labels 0 half the time


def test_sharpness_is_zero_for_flat_and_one_for_a_checkerboard():
    flat = np.full((1, 4, 4), 0.3)
    board = (np.indices((4, 4)).sum(axis=0) % 2)[None].astype(float)
    np.testing.assert_allclose(pixel_metric.sharpness(flat), [0.0])
    np.testing.assert_allclose(pixel_metric.sharpness(board), [1.0])


def test_code_neighbour_images_match_brute_force():
    rng = np.random.default_rng(2)
    train_codes, test_codes = rng.normal(size=(40, 3)), rng.normal(size=(5, 3))
    train_x = rng.uniform(size=(40, 8))
    mean, nearest = pixel_metric.code_neighbour_images(
        train_codes, test_codes, train_x, 4
    )
    for i, code in enumerate(test_codes):
        order = np.argsort(np.linalg.norm(train_codes - code, axis=1))
        np.testing.assert_allclose(mean[i], train_x[order[:4]].mean(axis=0))
        np.testing.assert_allclose(nearest[i], train_x[order[0]])


def test_a_two_unit_ae_reconstructs_the_blurry_conditional_mean(tmp_path):
    digits = data.load_dataset("digits")
    config = make_config(
        "quickstart",
        model={"kind": "ae", "hidden": (64,), "latent_dim": 2},
        objective={"name": "mse"},
        train={"num_steps": 600, "write_figures": False},
    )
    exp, params, _ = autoencoders.fit(config, digits)
    out = pixel_metric.mse_optimum_study(
        exp.model,
        params,
        digits,
        num_test=200,
        num_neighbours=10,
        image_path=tmp_path / "blur.png",
    )
    # the MSE optimum: the average of images sharing a code beats a sharp one of them
    assert out["mse_code_mean"] < out["mse_nearest_code_image"]
    # the reconstruction is that average, and blurrier than the data
    assert out["mse_reconstruction_to_code_mean"] < 0.5 * out["mse_reconstruction"]
    assert out["sharpness_reconstruction"] < 0.8 * out["sharpness_data"]
    assert (tmp_path / "blur.png").is_file()
