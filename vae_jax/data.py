"""The datasets: loading, splitting and shaping them into ``Dataset`` arrays.

Arrays are float32 in [0, 1], flattened to ``[N, D]``; nothing is cached between
calls. Files are found and checksummed by ``data_files``, parsed by ``data_formats``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from vae_jax.data_files import (
    DataCorruptError,
    DataError,
    DataNotFoundError,  # noqa: F401 (re-exported: data.DataNotFoundError)
    locate,
    locate_ucr,
)
from vae_jax.data_formats import read_idx, read_mat, read_npz, read_ts

DATASETS: tuple[str, ...] = (
    "digits",
    "mnist",
    "fashion_mnist",
    "frey_faces",
    "binarized_mnist",
    "synthetic",
    "synthetic_series",
    "gunpoint",
    "italy_power_demand",
    "arrowhead",
)
IMAGE_SHAPES: dict[str, tuple[int, ...]] = {  # (H, W) of each dataset's images
    "digits": (8, 8),
    "mnist": (28, 28),
    "fashion_mnist": (28, 28),
    "frey_faces": (28, 20),
    "binarized_mnist": (28, 28),
    "synthetic": (4, 4),
    "synthetic_series": (50,),
    "gunpoint": (150,),  # series (T,): UCR archive, as aeon's wheel ships them
    "italy_power_demand": (24,),
    "arrowhead": (251,),
}
UCR_PROBLEMS = {  # dataset name -> the UCR archive's problem name (Dau et al. 2019)
    "gunpoint": "GunPoint",
    "italy_power_demand": "ItalyPowerDemand",
    "arrowhead": "ArrowHead",
}
IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value
class Dataset:
    """train: [N, D + C], valid: [Nv, D + C], test: [Nt, D + C] float32 in [0, 1],
    C-contiguous; labels [N] int32 or None; image_shape (H, W) with H * W = D;
    ``binary`` when the values are exactly {0, 1}. ``condition_dim`` C = 0 unless
    the splits end in one-hot label columns for a conditional model
    (``with_one_hot_labels``); ``images`` strips them."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None
    valid_labels: np.ndarray | None
    test_labels: np.ndarray | None
    image_shape: tuple[int, ...]
    binary: bool = False
    condition_dim: int = 0

    @property
    def dim(self) -> int:
        """D, the flat image dimension."""
        return math.prod(self.image_shape)

    @property
    def input_dim(self) -> int:
        """D + C, the width of a model input."""
        return self.dim + self.condition_dim

    def images(self, x):
        """The D pixel columns of model inputs: [..., D + C] -> [..., D]."""
        return x[..., : self.dim]


# ---------------------------------------------------------------- splitting
def _check_labeled(images: np.ndarray, labels: np.ndarray, images_path, labels_path):
    """Images [N, 28, 28] uint8 and labels [N] in 0..9, else DataCorruptError."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataCorruptError(
            f"{images_path}: images are {images.shape}, want [N, 28, 28]."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataCorruptError(
            f"{labels_path} holds labels of shape {labels.shape} for the "
            f"{len(images)} images of {images_path}; want [{len(images)}]."
        )
    if labels.size and labels.max() > 9:
        raise DataCorruptError(f"{labels_path}: label {labels.max()} outside 0..9.")


def _scale(x: np.ndarray, high: float) -> np.ndarray:
    """[N, ...] -> [N, D] float32 C-contiguous, divided by ``high``."""
    flat = x.reshape(len(x), math.prod(x.shape[1:]))  # -1 fails when N = 0
    return np.ascontiguousarray(flat, np.float32) / np.float32(high)


def _check_valid_size(valid_size: int, available: int) -> None:
    if not 0 <= valid_size < available:
        raise ValueError(f"valid_size={valid_size} must be in [0, {available}).")


def _permuted_split(x, y, num_test: int, valid_size: int, seed: int) -> list[tuple]:
    """[(x, y)] for train, valid, test from one Generator(seed) permutation of rows:
    its first num_test entries are test, the next valid_size valid, the rest train."""
    _check_valid_size(valid_size, len(x) - num_test)
    perm = np.random.default_rng(seed).permutation(len(x))
    test, valid, train = np.split(perm, [num_test, num_test + valid_size])
    return [(x[i], None if y is None else y[i]) for i in (train, valid, test)]


def _make(name, splits, image_shape, binary=False, high=1.0) -> Dataset:
    """Dataset from [(x, y)] * 3 in train, valid, test order."""
    xs = [_scale(x, high) for x, _ in splits]
    ys = [None if y is None else np.ascontiguousarray(y, np.int32) for _, y in splits]
    return Dataset(name, *xs, *ys, tuple(image_shape), binary)


# ---------------------------------------------------------------- loaders
def _load_digits(data_dir, valid_size, seed, download) -> Dataset:
    """UCI optical digits (Alpaydin & Kaynak 1998) as bundled with scikit-learn."""
    from sklearn.datasets import load_digits  # lazy: importing sklearn is slow

    bunch = load_digits()  # bundled with sklearn: 1797 x 64, values 0..16
    v = 200 if valid_size is None else valid_size
    splits = _permuted_split(bunch.data, bunch.target, 297, v, seed)
    return _make("digits", splits, IMAGE_SHAPES["digits"], high=16.0)


def _load_idx_dataset(name, data_dir, valid_size, seed, download) -> Dataset:
    """MNIST (LeCun et al. 1998) or Fashion-MNIST (Xiao et al. 2017) IDX files.

    Train = first 60000 - v training images, valid = the last v, test = t10k.
    """
    paths = locate([f"{name}/{n}" for n in IDX_NAMES], data_dir, download)
    x_tr, y_tr, x_te, y_te = (read_idx(p) for p in paths)
    _check_labeled(x_tr, y_tr, paths[0], paths[1])
    _check_labeled(x_te, y_te, paths[2], paths[3])
    v = 10000 if valid_size is None else valid_size
    _check_valid_size(v, len(x_tr))
    cut = len(x_tr) - v
    splits = [(x_tr[:cut], y_tr[:cut]), (x_tr[cut:], y_tr[cut:]), (x_te, y_te)]
    return _make(name, splits, IMAGE_SHAPES[name], high=255.0)


def _load_frey(data_dir, valid_size, seed, download) -> Dataset:
    """Frey faces (via Roweis; Kingma & Welling 2013, §5): 1965 faces of 28x20."""
    (path,) = locate(["frey_faces/frey_rawface.mat"], data_dir, download)
    ff = read_mat(path, "ff")  # [560, 1965] uint8, one face per column
    if ff.dtype != np.uint8 or ff.ndim != 2 or ff.shape[0] != 28 * 20:
        raise DataCorruptError(f"{path}: 'ff' is {ff.dtype}{ff.shape}, want [560, N].")
    v = 100 if valid_size is None else valid_size
    splits = _permuted_split(ff.T.reshape(-1, 28, 20), None, 200, v, seed)
    return _make("frey_faces", splits, IMAGE_SHAPES["frey_faces"], high=255.0)


def _load_binarized(data_dir, valid_size, seed, download) -> Dataset:
    """Larochelle & Murray 2011 fixed split; ``valid_size`` and ``seed`` are ignored."""
    (path,) = locate(["binarized_mnist/binarized_mnist.npz"], data_dir, download)
    parts = read_npz(path, ("train", "valid", "test"))
    for a in parts:
        if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != 784:
            raise DataCorruptError(f"{path}: {a.dtype}{a.shape}, want uint8 [N, 784].")
        if a.max(initial=0) > 1:
            raise DataCorruptError(f"{path}: values outside {{0, 1}}.")
    shape = IMAGE_SHAPES["binarized_mnist"]
    return _make("binarized_mnist", [(a, None) for a in parts], shape, binary=True)


def _load_synthetic(data_dir, valid_size, seed, download) -> Dataset:
    """4 noisy clusters in [0, 1]^16 (4x4 images): 512 train, v (64) valid, 64 test."""
    rng = np.random.default_rng(seed)
    v = 64 if valid_size is None else valid_size
    _check_valid_size(v, 512 + v)  # only rejects v < 0: train is fixed at 512
    centers = rng.uniform(0.2, 0.8, size=(4, 16))
    labels = rng.integers(0, 4, size=512 + v + 64)
    noise = 0.1 * rng.standard_normal((len(labels), 16))
    x = np.clip(centers[labels] + noise, 0.0, 1.0)
    bounds = ((0, 512), (512, 512 + v), (512 + v, None))
    splits = [(x[a:b], labels[a:b]) for a, b in bounds]
    return _make("synthetic", splits, IMAGE_SHAPES["synthetic"])


def _load_synthetic_series(data_dir, valid_size, seed, download) -> Dataset:
    """Two classes of noisy series of length 50: sines (label 0) and square waves
    (label 1) of random period and phase, noise sd 0.1; 512 train, v (64) valid,
    64 test."""
    rng = np.random.default_rng(seed)
    v = 64 if valid_size is None else valid_size
    _check_valid_size(v, 512 + v)
    n, t = 512 + v + 64, np.arange(IMAGE_SHAPES["synthetic_series"][0])
    labels = rng.integers(0, 2, size=n)
    period = rng.uniform(12.0, 25.0, size=(n, 1))
    wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, size=(n, 1)))
    x = np.where(labels[:, None] == 0, wave, np.sign(wave))
    x = x + 0.1 * rng.standard_normal(x.shape)
    bounds = ((0, 512), (512, 512 + v), (512 + v, None))
    splits = [(x[a:b], labels[a:b]) for a, b in bounds]
    return _make("synthetic_series", splits, IMAGE_SHAPES["synthetic_series"])


def _load_ucr(name, data_dir, valid_size, seed, download) -> Dataset:
    """A UCR problem (Dau et al. 2019) with the archive's train/test split; valid = the
    last v training series (default 10%). Values as archived (each series z-normalised),
    labels renumbered 0..C-1 in sorted order; ``seed`` is unused."""
    del seed
    train_path, test_path = locate_ucr(UCR_PROBLEMS[name], data_dir, download)
    (x_tr, l_tr), (x_te, l_te) = read_ts(train_path), read_ts(test_path)
    if x_tr.shape[1] != x_te.shape[1] or (x_tr.shape[1],) != IMAGE_SHAPES[name]:
        raise DataCorruptError(
            f"{train_path}, {test_path}: lengths {x_tr.shape[1]}, {x_te.shape[1]}; "
            f"want {IMAGE_SHAPES[name][0]}."
        )
    classes = {c: i for i, c in enumerate(sorted(set(l_tr) | set(l_te)))}
    y_tr, y_te = (np.array([classes[c] for c in ls]) for ls in (l_tr, l_te))
    v = round(0.1 * len(x_tr)) if valid_size is None else valid_size
    _check_valid_size(v, len(x_tr))
    cut = len(x_tr) - v
    splits = [(x_tr[:cut], y_tr[:cut]), (x_tr[cut:], y_tr[cut:]), (x_te, y_te)]
    return _make(name, splits, IMAGE_SHAPES[name])


_LOADERS = {
    "digits": _load_digits,
    "mnist": lambda *args: _load_idx_dataset("mnist", *args),
    "fashion_mnist": lambda *args: _load_idx_dataset("fashion_mnist", *args),
    "frey_faces": _load_frey,
    "binarized_mnist": _load_binarized,
    "synthetic": _load_synthetic,
    "synthetic_series": _load_synthetic_series,
    **{name: functools.partial(_load_ucr, name) for name in UCR_PROBLEMS},
}


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    valid_size: int | None = None,
    seed: int = 0,
    download: bool = False,
) -> Dataset:
    """Loads, verifies and splits dataset ``name`` (one of ``DATASETS``).

    ``valid_size=None`` is the dataset's default: digits 200, mnist/fashion_mnist
    10000 (the last training images), frey_faces 100, synthetic 64; binarized_mnist
    keeps its fixed 50k/10k/10k split; the UCR series (gunpoint, italy_power_demand,
    arrowhead) keep the archive's train/test split, valid the last 10% of train.
    ``seed`` fixes the digits/frey permutation and the synthetic data.
    """
    if name not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choices: {', '.join(DATASETS)}.")
    return _LOADERS[name](data_dir, valid_size, seed, download)


def center_dataset(dataset):
    """The dataset with the training mean subtracted from every split (train mean only,
    so test data sees no test statistics). Returns (dataset, mean [D])."""
    mean = np.mean(dataset.train, axis=0, dtype=np.float64).astype(np.float32)
    shifted = {
        name: np.ascontiguousarray(getattr(dataset, name) - mean[None])
        for name in ("train", "valid", "test")
    }
    return dataclasses.replace(dataset, binary=False, **shifted), mean


def with_one_hot_labels(dataset: Dataset, num_classes: int) -> Dataset:
    """Each split followed by its labels' one-hot columns: [N, D] -> [N, D + C], the
    inputs of a conditional model (``models.cvae``). Binary data stays binary."""
    if dataset.condition_dim:
        raise DataError(f"{dataset.name} already ends in label columns.")
    splits = {}
    for name in ("train", "valid", "test"):
        x, labels = getattr(dataset, name), getattr(dataset, f"{name}_labels")
        if labels is None:
            raise DataError(
                f"A conditional model needs labels; {dataset.name} has none for "
                f"its {name} split."
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(
                f"{dataset.name} {name} labels span [{labels.min()}, {labels.max()}],"
                f" outside the model's {num_classes} classes (model.num_classes)."
            )
        onehot = np.eye(num_classes, dtype=x.dtype)[labels]
        splits[name] = np.ascontiguousarray(np.concatenate([x, onehot], axis=1))
    return dataclasses.replace(dataset, condition_dim=num_classes, **splits)
