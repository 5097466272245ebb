"""Datasets (found, checksummed, split) and pure-JAX batching helpers.

Files are searched in: ``data_dir``, ``$VAE_JAX_DATA``, ``../shared/data`` (from the
working directory and from the repository), then the user cache
(``$XDG_CACHE_HOME/vae_jax`` or ``~/.cache/vae_jax``). Every file is checked
against its known SHA-256 before it is parsed.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import tempfile
import urllib.request
import zlib

import jax
import jax.numpy as jnp
import numpy as np


class DataError(ValueError):
    """Base class of the library's data errors."""


class DataNotFoundError(DataError):
    """A dataset file is in none of the searched directories."""


class DataCorruptError(DataError):
    """A dataset file has the wrong checksum, header, size or values."""


SHA256 = {
    "binarized_mnist/binarized_mnist.npz": "350243cb824d66d022e0c3e87cac231231668817ff03f5f6d7b6533017d56b4b",
    "fashion_mnist/t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "fashion_mnist/t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    "fashion_mnist/train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "fashion_mnist/train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "frey_faces/frey_rawface.mat": "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
    "mnist/t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "mnist/train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
}
URLS = {  # opt-in downloads (download=True); checked against SHA256 before use
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "frey_faces": "https://cs.nyu.edu/~roweis/data/",
}
DATASETS = ("digits", "mnist", "fashion_mnist", "frey_faces", "binarized_mnist", "synthetic")
_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Flat float32 data in [0, 1]: ``train [N, D]``, ``valid [Nv, D]``, ``test [Nt, D]``."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None
    valid_labels: np.ndarray | None
    test_labels: np.ndarray | None
    image_shape: tuple[int, ...]
    binary: bool = False

    @property
    def dim(self) -> int:
        """D, the number of values per example."""
        return int(np.prod(self.image_shape))


def cache_dir() -> pathlib.Path:
    """The user cache: ``$XDG_CACHE_HOME/vae_jax`` or ``~/.cache/vae_jax``."""
    root = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(root) / "vae_jax"


def search_dirs(data_dir: str | None = None) -> list[pathlib.Path]:
    """Directories searched for dataset files, in order (duplicates removed)."""
    candidates = [data_dir, os.environ.get("VAE_JAX_DATA"),
                  pathlib.Path.cwd().parent / "shared" / "data",
                  pathlib.Path(__file__).resolve().parents[2] / "shared" / "data",
                  cache_dir()]
    dirs = []
    for c in candidates:
        if c and pathlib.Path(c).expanduser().absolute() not in dirs:
            dirs.append(pathlib.Path(c).expanduser().absolute())
    return dirs


def verify_checksum(path: pathlib.Path, expected_sha256: str) -> None:
    """Raises ``DataCorruptError`` unless the file's SHA-256 is ``expected_sha256``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise DataCorruptError(
            f"{path} is corrupt or not the expected file: sha256 {digest.hexdigest()}, "
            f"expected {expected_sha256}. Delete it and put the original file there."
        )


def _download(relpath: str) -> pathlib.Path:
    dataset, name = relpath.split("/")
    target = cache_dir() / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        with urllib.request.urlopen(URLS[dataset] + name, timeout=60) as response:
            tmp.write(response.read())
    verify_checksum(pathlib.Path(tmp.name), SHA256[relpath])
    os.replace(tmp.name, target)
    return target


def find_files(relpaths, data_dir: str | None = None, download: bool = False):
    """Checksummed paths of ``relpaths`` (e.g. ``"mnist/t10k-labels-idx1-ubyte.gz"``)."""
    dirs = search_dirs(data_dir)
    found = []
    for relpath in relpaths:
        path = next((d / relpath for d in dirs if (d / relpath).is_file()), None)
        if path is None and download and relpath.split("/")[0] in URLS:
            path = _download(relpath)
        if path is None:
            raise DataNotFoundError(
                f"Dataset file {relpath!r} not found (needed: {list(relpaths)}).\n"
                "Searched:\n  " + "\n  ".join(map(str, dirs)) + "\n"
                "Put the files under one of these (keeping the sub-folder), or point "
                "--config.data.data_dir / $VAE_JAX_DATA at their parent folder, or set "
                "--config.data.download=True when online."
            )
        verify_checksum(path, SHA256[relpath])
        found.append(path)
    return found


def read_idx(path: str | pathlib.Path) -> np.ndarray:
    """Parses an IDX file (gzip or plain) of unsigned bytes into an array of its shape."""
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataCorruptError(f"{path}: unreadable gzip data ({err}).") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataCorruptError(f"{path}: not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataCorruptError(f"{path}: truncated IDX header.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape)):
        raise DataCorruptError(
            f"{path}: header says shape {shape} ({int(np.prod(shape))} bytes) but the "
            f"file holds {len(raw) - header} bytes (truncated or trailing data)."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _split(n: int, sizes: tuple[int, int], seed: int) -> tuple[np.ndarray, ...]:
    """Seeded permutation of range(n) cut into (train, valid, test) index arrays."""
    valid, test = sizes
    if valid + test >= n:
        raise ValueError(f"valid_size={valid} and test size {test} leave no training data.")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[valid + test:], perm[:valid], perm[valid:valid + test]


def _dataset(name, x, labels, splits, image_shape, binary=False) -> Dataset:
    x = np.ascontiguousarray(x, np.float32)
    parts = [x[i] for i in splits]
    label_parts = [None if labels is None else labels[i].astype(np.int32) for i in splits]
    return Dataset(name, *parts, *label_parts, image_shape=image_shape, binary=binary)


def _load_idx_pair(name, data_dir, download, valid_size) -> Dataset:
    paths = find_files([f"{name}/{f}" for f in _IDX], data_dir, download)
    train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    for images, labels, path in ((train_x, train_y, paths[0]), (test_x, test_y, paths[2])):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataCorruptError(f"{path}: images {images.shape} do not match labels {labels.shape}.")
        if labels.max(initial=0) > 9:
            raise DataCorruptError(f"{path}: labels outside 0..9.")
    valid_size = 10_000 if valid_size is None else valid_size
    n_train = len(train_x) - valid_size
    if not 0 <= valid_size < len(train_x):
        raise ValueError(f"valid_size={valid_size} must lie in [0, {len(train_x)}).")
    x = np.concatenate([train_x, test_x]).reshape(len(train_x) + len(test_x), -1) / 255.0
    y = np.concatenate([train_y, test_y])
    splits = (np.arange(n_train), np.arange(n_train, len(train_x)),
              np.arange(len(train_x), len(x)))  # valid = last valid_size train images
    return _dataset(name, x, y, splits, tuple(train_x.shape[1:]))


def _load_frey(data_dir, download, valid_size, seed) -> Dataset:
    import scipy.io

    (path,) = find_files(["frey_faces/frey_rawface.mat"], data_dir, download)
    try:
        faces = scipy.io.loadmat(path)["ff"]
    except Exception as err:  # noqa: BLE001 - any parse failure is a corrupt file
        raise DataCorruptError(f"{path}: cannot read the 'ff' matrix ({err}).") from err
    if faces.shape != (560, 1965):
        raise DataCorruptError(f"{path}: expected 'ff' of shape (560, 1965), got {faces.shape}.")
    x = faces.T.astype(np.float32) / 255.0  # [1965, 560], rows of 28x20 images
    splits = _split(len(x), (100 if valid_size is None else valid_size, 200), seed)
    return _dataset("frey_faces", x, None, splits, (28, 20))


def _load_binarized_mnist(data_dir, download) -> Dataset:
    (path,) = find_files(["binarized_mnist/binarized_mnist.npz"], data_dir, download)
    with np.load(path, allow_pickle=False) as f:
        arrays = [f[k] for k in ("train", "valid", "test")]
    if any(a.ndim != 2 or a.shape[1] != 784 or a.max(initial=0) > 1 for a in arrays):
        raise DataCorruptError(f"{path}: expected [N, 784] arrays of 0/1 values.")
    x = np.concatenate(arrays)
    bounds = np.cumsum([0] + [len(a) for a in arrays])
    splits = tuple(np.arange(bounds[i], bounds[i + 1]) for i in range(3))
    return _dataset("binarized_mnist", x, None, splits, (28, 28), binary=True)


def _load_digits(valid_size, seed) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    splits = _split(len(digits.data), (200 if valid_size is None else valid_size, 297), seed)
    return _dataset("digits", digits.data / 16.0, digits.target, splits, (8, 8))


def _load_synthetic(valid_size, seed) -> Dataset:
    """640 noisy copies of 4 random 4x4 prototypes: clustered data with labels."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(4, 16))
    labels = rng.integers(0, 4, size=640)
    x = np.clip(prototypes[labels] + 0.1 * rng.normal(size=(640, 16)), 0.0, 1.0)
    splits = _split(640, (64 if valid_size is None else valid_size, 64), seed)
    return _dataset("synthetic", x, labels, splits, (4, 4))


def load_dataset(name: str, *, data_dir: str | None = None, valid_size: int | None = None,
                 seed: int = 0, download: bool = False) -> Dataset:
    """Loads ``name`` (one of ``DATASETS``) as float32 in [0, 1], split train/valid/test.

    MNIST-style sets keep their 10k test set and validate on the last ``valid_size``
    (default 10,000) training images; Larochelle's binarized MNIST keeps its fixed
    50k/10k/10k split; the others are split by a permutation seeded with ``seed``.
    """
    if name in ("mnist", "fashion_mnist"):
        return _load_idx_pair(name, data_dir, download, valid_size)
    if name == "frey_faces":
        return _load_frey(data_dir, download, valid_size, seed)
    if name == "binarized_mnist":
        return _load_binarized_mnist(data_dir, download)
    if name == "digits":
        return _load_digits(valid_size, seed)
    if name == "synthetic":
        return _load_synthetic(valid_size, seed)
    raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}.")


def epoch_permutation(key: jax.Array, epoch, num_examples: int) -> jax.Array:
    """The order of epoch ``epoch``: a permutation of range(N) from fold_in(key, epoch)."""
    return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


def batch_indices(key: jax.Array, start_step, num_steps: int, num_examples: int,
                  batch_size: int) -> jax.Array:
    """Example indices [num_steps, B] of global steps start_step .. start_step+num_steps-1.

    Epoch e = s // (N // B) is the permutation ``epoch_permutation(key, e, N)``, cut
    into N // B batches (the ragged tail is dropped). Depends on (key, step) only, so
    a resumed run sees the same batches. Needs num_steps <= N // B.
    """
    steps_per_epoch = num_examples // batch_size
    if not 0 < num_steps <= steps_per_epoch:
        raise ValueError(f"num_steps={num_steps} must lie in [1, {steps_per_epoch}].")
    steps = start_step + jnp.arange(num_steps)
    first_epoch = start_step // steps_per_epoch
    perms = jnp.stack([epoch_permutation(key, first_epoch + i, num_examples) for i in (0, 1)])
    perms = perms[:, : steps_per_epoch * batch_size].reshape(2, steps_per_epoch, batch_size)
    return perms[steps // steps_per_epoch - first_epoch, steps % steps_per_epoch]


def dynamic_binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """A fresh Bernoulli(x) sample of intensities x in [0, 1], same shape, float32."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


def pad_to_batches(x: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """x [N, D] -> (zero-padded [nb, B, D], mask [nb, B] with 1 for real rows)."""
    n = len(x)
    num_batches = -(-n // batch_size)
    padded = np.zeros((num_batches * batch_size, *x.shape[1:]), np.float32)
    padded[:n] = x
    mask = (np.arange(num_batches * batch_size) < n).astype(np.float32)
    return padded.reshape(num_batches, batch_size, *x.shape[1:]), mask.reshape(num_batches, batch_size)
