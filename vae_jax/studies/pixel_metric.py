"""Limitation 1 of autoencoders: a pixel-wise loss misjudges what matters.

Two measurements. (a) Small shifts, rotations and thicker strokes move a digit as far
from itself in pixel MSE as an unrelated digit is, while the features of a classifier
(``sample_quality.FeatureClassifier``) barely move. (b) The decoder that minimises
E ||x - g(z)||^2 given the code z = f(x) is the conditional mean g*(z) = E[x | z]
(the MSE optimum is the mean of the posterior over images): where a code is shared by
different images the reconstruction is their per-pixel average, a blur. E[x | z] is
estimated by the mean of the training images whose codes are the code's nearest
neighbours; a sharp image with that code (the nearest one) is a plausible digit and
still scores a larger MSE than the blur.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from vae_jax.studies import autoencoders, codes


# ------------------------------------------------------------------ transformations
def shift_images(images: np.ndarray, pixels: float) -> np.ndarray:
    """Each image moved ``pixels`` to the right (bilinear). images: [N, H, W]."""
    return np.clip(ndimage.shift(images, (0, 0, pixels), order=1), 0.0, 1.0)


def rotate_images(images: np.ndarray, degrees: float) -> np.ndarray:
    """Each image rotated by ``degrees`` about its centre (bilinear). [N, H, W]."""
    rotated = ndimage.rotate(images, degrees, axes=(1, 2), reshape=False, order=1)
    return np.clip(rotated, 0.0, 1.0)


def thicken_strokes(images: np.ndarray, steps: int) -> np.ndarray:
    """Strokes widened by ``steps`` grey dilations with a 3 x 3 cross (each adds about
    one pixel to the width of a stroke). [N, H, W]."""
    cross = ndimage.generate_binary_structure(2, 1)[None]  # [1, 3, 3]
    for _ in range(int(steps)):
        images = ndimage.grey_dilation(images, footprint=cross)
    return images


TRANSFORMS: dict[str, tuple[Callable, tuple, str]] = {
    "shift": (shift_images, (0, 1, 2, 3, 4), "pixels to the right"),
    "rotation": (rotate_images, (0, 5, 10, 20, 30), "degrees"),
    "stroke": (thicken_strokes, (0, 1, 2), "dilations"),
}


# ------------------------------------------------------------------ distances
def unrelated_partners(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each row i a random row j with labels[j] != labels[i]. labels: [N] -> [N]."""
    rng = np.random.default_rng(seed)
    partners = np.empty(len(labels), np.int64)
    for i, label in enumerate(labels):
        partners[i] = rng.choice(np.flatnonzero(labels != label))
    return partners


def pixel_mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_n - b_n||^2 / D per row. a, b: [N, ...] -> [N]."""
    diff = (a - b).reshape(len(a), -1).astype(np.float64)
    return np.mean(np.square(diff), axis=1)


def feature_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_n - b_n||_2 per row of feature vectors. a, b: [N, H] -> [N]."""
    return np.linalg.norm(np.asarray(a, np.float64) - b, axis=1)


def distance_curves(images, labels, net, transforms=None, seed: int = 0) -> list[dict]:
    """Per transformation and size s: mean pixel MSE and mean feature distance between
    each image and its transformed self, each divided by the same mean between the
    image and an unrelated digit (another class; ratio 1 = "as far as another digit"),
    and the fraction the classifier still labels correctly.

    images: [N, H, W]; labels: [N]; net: a ``FeatureClassifier`` (``features``,
    ``probabilities`` of [N, D] rows)."""
    flat = lambda x: x.reshape(len(x), -1)
    partners = unrelated_partners(labels, seed)
    feats = net.features(flat(images))  # [N, H]
    pixel_far = pixel_mse(images, images[partners]).mean()
    feature_far = feature_distance(feats, feats[partners]).mean()
    rows = []
    for name, (transform, sizes, unit) in (transforms or TRANSFORMS).items():
        for size in sizes:
            moved = transform(images, size)
            moved_feats = net.features(flat(moved))
            pixel = pixel_mse(images, moved).mean()
            feature = feature_distance(feats, moved_feats).mean()
            correct = net.probabilities(flat(moved)).argmax(axis=1) == labels
            rows.append(
                {
                    "transform": name,
                    "size": size,
                    "unit": unit,
                    "pixel_mse": float(pixel),
                    "feature_distance": float(feature),
                    "pixel_ratio": float(pixel / pixel_far),
                    "feature_ratio": float(feature / feature_far),
                    "classifier_accuracy": float(correct.mean()),
                }
            )
    return rows


# ------------------------------------------------------------------ the MSE optimum
def sharpness(images: np.ndarray) -> np.ndarray:
    """Mean squared difference of horizontally and vertically adjacent pixels per
    image (a blur lowers it). images: [N, H, W] -> [N]."""
    dx = np.diff(images, axis=2).reshape(len(images), -1)
    dy = np.diff(images, axis=1).reshape(len(images), -1)
    return (np.mean(dx**2, axis=1) + np.mean(dy**2, axis=1)) / 2


def code_neighbour_images(train_codes, test_codes, train_x, num_neighbours: int):
    """Per test code, the mean of the training images with the ``num_neighbours``
    nearest codes (the estimate of E[x | z]) and the image with the nearest code.
    codes: [N, K], [M, K]; train_x: [N, D] -> ([M, D], [M, D])."""
    from sklearn.neighbors import NearestNeighbors  # lazy: sklearn import

    search = NearestNeighbors(n_neighbors=num_neighbours).fit(train_codes)
    _, idx = search.kneighbors(test_codes)  # [M, n], nearest first
    return train_x[idx].mean(axis=1), train_x[idx[:, 0]]


def mse_optimum_study(
    model, params, dataset, *, num_test=1000, num_neighbours=20, image_path=None
):
    """Reconstructions g(f(x)) against the estimated conditional mean E[x | f(x)] and
    the sharp training image with the nearest code: mean MSE to x of each, the MSE
    between reconstruction and conditional mean, and each one's ``sharpness``. With
    ``image_path``, a figure: rows x / g(f(x)) / E[x | z] estimate / nearest image."""
    test_x = dataset.test[:num_test]
    train_codes = codes.encode_codes(model, params, dataset.train)
    test_codes = codes.encode_codes(model, params, test_x)
    recon = autoencoders.reconstructions(model, params, test_x)
    mean_img, nearest = code_neighbour_images(
        train_codes, test_codes, dataset.train, num_neighbours
    )
    shape = (-1, *dataset.image_shape)
    out = {"num_neighbours": num_neighbours}
    for name, images in [("reconstruction", recon), ("code_mean", mean_img)]:
        out[f"mse_{name}"] = float(pixel_mse(test_x, images).mean())
    out["mse_nearest_code_image"] = float(pixel_mse(test_x, nearest).mean())
    out["mse_reconstruction_to_code_mean"] = float(pixel_mse(recon, mean_img).mean())
    for name, images in [
        ("data", test_x),
        ("reconstruction", recon),
        ("code_mean", mean_img),
        ("nearest_code_image", nearest),
    ]:
        out[f"sharpness_{name}"] = float(sharpness(images.reshape(shape)).mean())
    if image_path is not None:
        from vae_jax import plots  # lazy: matplotlib import

        grid = np.stack([test_x[:10], recon[:10], mean_img[:10], nearest[:10]])
        plots.image_grid(
            np.clip(grid.reshape(shape), 0, 1),
            pathlib.Path(image_path),
            title="rows: x, g(f(x)), E[x | z] estimate, nearest-code image",
            num_columns=10,
        )
    return out


def write_distance_figure(rows: list[dict], path) -> None:
    """Pixel and feature ratios against the transformation size, one panel each."""
    from vae_jax import plots  # lazy: matplotlib import

    panels, xlabels = {}, {}
    for name in dict.fromkeys(r["transform"] for r in rows):
        own = [r for r in rows if r["transform"] == name]
        sizes = [r["size"] for r in own]
        panels[name] = {
            "pixel MSE": (sizes, [r["pixel_ratio"] for r in own]),
            "classifier features": (sizes, [r["feature_ratio"] for r in own]),
        }
        xlabels[name] = own[0]["unit"]
    plots.line_panels(
        panels,
        path,
        xlabels=xlabels,
        ylabel="distance / distance to an unrelated digit",
        suptitle="How far a transformed digit moves from itself",
    )
