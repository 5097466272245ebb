"""Datasets (found, checksummed, split) and jit-friendly batching helpers.

Files are looked up, in order, in: the ``data_dir`` argument, ``$VAE_JAX_DATA``,
``../shared/data`` from the working directory and from the repository root, and
the user cache ``$XDG_CACHE_HOME/vae_jax`` (default ``~/.cache/vae_jax``).
Every file is sha256-verified before it is parsed. Arrays are float32 in [0, 1],
flattened to ``[N, D]``; nothing is cached between calls.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import math
import os
import pathlib
import shutil
import urllib.request
import zipfile
import zlib

import jax
import jax.numpy as jnp
import numpy as np

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
SHA256: dict[str, str] = {  # relative path -> sha256 of the upstream file
    "ucr/ArrowHead_TEST.ts": "5417dab42626d41df5e435bb22458c2df40dfad4bcd3b59559bbe72e20e84904",
    "ucr/ArrowHead_TRAIN.ts": "a83c470aaf611a5f5284377cce27a5fc9f6292bc3d110257b0fd4905ced5ee72",
    "ucr/GunPoint_TEST.ts": "79332750788a6227b325b96bd0d70130c8eb707b9731f8d7dec62b7a7d36017e",
    "ucr/GunPoint_TRAIN.ts": "f842401779fd9800d247d8b33121a1a4643710a19b24917dbdd9a060ca8630d5",
    "ucr/ItalyPowerDemand_TEST.ts": "26122451f87dd0387ef90b18bc8a86c041371b8a1c068004922b939971247144",
    "ucr/ItalyPowerDemand_TRAIN.ts": "341269cb7e6cef96846b30e774580beec79addb93848ba360145219115a74b7c",
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
URL_BASES: dict[
    str, str
] = {  # download=True only; binarized_mnist has no upstream .npz
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "frey_faces": "https://cs.nyu.edu/~roweis/data/",
}


class DataError(ValueError):
    """Base of the library's data errors."""


class DataNotFoundError(DataError):
    """A dataset file is in none of the searched directories."""


class DataCorruptError(DataError):
    """A dataset file has the wrong checksum, header, size or values."""


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


# ---------------------------------------------------------------- file discovery
def repo_data_dir() -> pathlib.Path:
    """``<repository root>/../shared/data``, the repository-relative fallback."""
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def cache_dir() -> pathlib.Path:
    """The user cache, where ``download=True`` writes: ``$XDG_CACHE_HOME/vae_jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "vae_jax"


def search_dirs(data_dir: str | None = None) -> list[pathlib.Path]:
    """Directories searched for data files, in order, without duplicates."""
    candidates = [data_dir, os.environ.get("VAE_JAX_DATA")]
    candidates += [pathlib.Path.cwd() / ".." / "shared" / "data", repo_data_dir()]
    dirs = [pathlib.Path(d).expanduser().resolve() for d in candidates if d]
    return list(dict.fromkeys([*dirs, cache_dir()]))


def _not_found(relpaths: list[str], dirs: list[pathlib.Path]) -> DataNotFoundError:
    searched = "".join(f"\n  - {d}" for d in dirs)
    return DataNotFoundError(
        f"Dataset file(s) not found: {', '.join(relpaths)}.\nSearched:{searched}\n"
        "Fix: put the files under DIR/<relative path> and pass data_dir=DIR "
        "(--config.data.data_dir=DIR) or set $VAE_JAX_DATA=DIR, or pass download=True "
        f"(--config.data.download=True) to fetch them into {cache_dir()}."
    )


def find_file(relpath: str, data_dir: str | None = None) -> pathlib.Path:
    """The first ``<dir>/relpath`` that exists among ``search_dirs(data_dir)``."""
    dirs = search_dirs(data_dir)
    for d in dirs:
        if (d / relpath).is_file():
            return d / relpath
    raise _not_found([relpath], dirs)


def verify_checksum(path: str | os.PathLike, expected_sha256: str) -> None:
    """Raises DataCorruptError unless sha256(file) == expected (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected_sha256:
        raise DataCorruptError(
            f"Checksum mismatch for {path}: expected sha256 {expected_sha256}, got "
            f"{digest.hexdigest()}. Replace it with the original (partial download?)."
        )


def _download(relpath: str) -> pathlib.Path:
    """Fetches ``relpath`` into the cache: temp file, checksum, then atomic rename."""
    base = URL_BASES.get(relpath.split("/")[0])
    if base is None:
        raise DataNotFoundError(f"No download URL for {relpath}; place it by hand.")
    url, dest = base + pathlib.PurePath(relpath).name, cache_dir() / relpath
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")  # same dir: atomic rename
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
        verify_checksum(tmp, SHA256[relpath])
        os.replace(tmp, dest)
    except OSError as e:
        raise DataNotFoundError(f"Download of {url} failed ({e}).") from e
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _locate(relpaths: list[str], data_dir, download: bool) -> list[pathlib.Path]:
    """Finds (or, with ``download``, fetches) every file and verifies its checksum."""
    dirs = search_dirs(data_dir)
    found = {
        r: next((d / r for d in dirs if (d / r).is_file()), None) for r in relpaths
    }
    missing = [r for r, p in found.items() if p is None]
    if missing and not download:
        raise _not_found(missing, dirs)
    found.update({r: _download(r) for r in missing})
    for r, p in found.items():
        verify_checksum(p, SHA256[r])
    return [found[r] for r in relpaths]


# ---------------------------------------------------------------- parsing
def _read_bytes(path: pathlib.Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataCorruptError(f"{path}: not a valid gzip file ({e}).") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """IDX file (LeCun et al. 1998; gzip if named *.gz) -> uint8 array of its dims.

    Header: magic 0x00 0x00 0x08 ndim, then ndim big-endian uint32 sizes. No checksum.
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:3] != b"\0\0\x08" or raw[3] == 0:
        raise DataCorruptError(f"{path}: bad IDX magic {raw[:4].hex()}, want 000008nn.")
    ndim, offset = raw[3], 4 + 4 * raw[3]
    if len(raw) < offset:
        raise DataCorruptError(f"{path}: truncated IDX header.")
    dims = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    if len(raw) - offset != math.prod(dims):
        raise DataCorruptError(
            f"{path}: IDX header says {dims} = {math.prod(dims)} bytes of data, "
            f"file has {len(raw) - offset} (truncated or trailing bytes)."
        )
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims).copy()


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
    paths = _locate([f"{name}/{n}" for n in IDX_NAMES], data_dir, download)
    x_tr, y_tr, x_te, y_te = (read_idx(p) for p in paths)
    _check_labeled(x_tr, y_tr, paths[0], paths[1])
    _check_labeled(x_te, y_te, paths[2], paths[3])
    v = 10000 if valid_size is None else valid_size
    _check_valid_size(v, len(x_tr))
    cut = len(x_tr) - v
    splits = [(x_tr[:cut], y_tr[:cut]), (x_tr[cut:], y_tr[cut:]), (x_te, y_te)]
    return _make(name, splits, IMAGE_SHAPES[name], high=255.0)


# What scipy.io.loadmat raises on a damaged or foreign file, besides MatReadError
# (truncated: OSError "could not read bytes"; v7.3/HDF5: NotImplementedError).
_MAT_ERRORS = (ValueError, OSError, EOFError, IndexError, NotImplementedError)


def _load_frey(data_dir, valid_size, seed, download) -> Dataset:
    """Frey faces (via Roweis; Kingma & Welling 2013, §5): 1965 faces of 28x20."""
    import scipy.io  # lazy: only this loader needs it

    (path,) = _locate(["frey_faces/frey_rawface.mat"], data_dir, download)
    try:
        mat = scipy.io.loadmat(str(path))
    except (scipy.io.matlab.MatReadError, *_MAT_ERRORS) as e:
        raise DataCorruptError(f"{path}: not a readable MATLAB file ({e}).") from e
    if "ff" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise DataCorruptError(f"{path}: no variable 'ff' (it holds {names}).")
    ff = mat["ff"]  # [560, 1965] uint8, one face per column
    if ff.dtype != np.uint8 or ff.ndim != 2 or ff.shape[0] != 28 * 20:
        raise DataCorruptError(f"{path}: 'ff' is {ff.dtype}{ff.shape}, want [560, N].")
    v = 100 if valid_size is None else valid_size
    splits = _permuted_split(ff.T.reshape(-1, 28, 20), None, 200, v, seed)
    return _make("frey_faces", splits, IMAGE_SHAPES["frey_faces"], high=255.0)


_NPZ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error)


def _read_npz(path: pathlib.Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    """The arrays ``keys`` of an ``.npz`` file, else DataCorruptError saying why."""
    try:
        archive = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as e:  # not a zip (nor .npy): "pickled data" ValueError
        raise DataCorruptError(f"{path}: not a readable .npz file ({e}).") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataCorruptError(f"{path}: a single .npy array, not an .npz archive.")
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise DataCorruptError(
                f"{path}: no array {', '.join(map(repr, missing))} in the archive "
                f"(it holds {sorted(archive.files)})."
            )
        try:
            return [archive[k] for k in keys]
        except _NPZ_ERRORS as e:  # a damaged member: CRC, zlib, .npy header
            raise DataCorruptError(f"{path}: damaged .npz archive ({e}).") from e


def _load_binarized(data_dir, valid_size, seed, download) -> Dataset:
    """Larochelle & Murray 2011 fixed split; ``valid_size`` and ``seed`` are ignored."""
    (path,) = _locate(["binarized_mnist/binarized_mnist.npz"], data_dir, download)
    parts = _read_npz(path, ("train", "valid", "test"))
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


def aeon_data_dir() -> pathlib.Path | None:
    """``aeon/datasets/data`` of an installed aeon (``pip install 'vae_jax[timeseries]'``;
    its wheel ships a few UCR problems), found without importing aeon; else None."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    return (
        pathlib.Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    )


def _locate_ucr(problem: str, data_dir, download: bool) -> list[pathlib.Path]:
    """``ucr/<problem>_{TRAIN,TEST}.ts`` from the searched directories, else from an
    installed aeon's data; checksummed either way."""
    relpaths = [f"ucr/{problem}_{split}.ts" for split in ("TRAIN", "TEST")]
    try:
        return _locate(relpaths, data_dir, download)
    except DataNotFoundError as err:
        base = aeon_data_dir()
        paths = [base / problem / r.split("/")[1] for r in relpaths] if base else []
        if not paths or not all(p.is_file() for p in paths):
            raise DataNotFoundError(
                f"{err}\nOr install aeon, whose wheel ships {problem}: "
                "pip install 'vae_jax[timeseries]'."
            ) from err
    for relpath, path in zip(relpaths, paths):
        verify_checksum(path, SHA256[relpath])
    return paths


def read_ts(path: pathlib.Path) -> tuple[np.ndarray, list[str]]:
    """A univariate, equal-length ``.ts`` file (sktime/aeon format: ``#`` comments,
    ``@`` headers, then ``v_1,...,v_T:label`` rows) -> (x [N, T] float32, labels)."""
    rows, labels, in_data = [], [], False
    for number, line in enumerate(_read_bytes(path).decode().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        values, sep, label = line.rpartition(":")
        try:
            if not sep:
                raise ValueError("no ':label'")
            rows.append(np.array(values.split(","), np.float32))
        except ValueError as e:
            raise DataCorruptError(f"{path}:{number}: not a series row ({e}).") from e
        labels.append(label)
    lengths = {len(r) for r in rows}
    if not rows or len(lengths) != 1:
        raise DataCorruptError(
            f"{path}: want equal-length rows, got lengths {lengths}."
        )
    return np.stack(rows), labels


def _load_ucr(name, data_dir, valid_size, seed, download) -> Dataset:
    """A UCR problem (Dau et al. 2019) with the archive's train/test split; valid = the
    last v training series (default 10%). Values as archived (each series z-normalised),
    labels renumbered 0..C-1 in sorted order; ``seed`` is unused."""
    del seed
    train_path, test_path = _locate_ucr(UCR_PROBLEMS[name], data_dir, download)
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


# ---------------------------------------------------------------- batching (jittable)
def epoch_permutation(key: jax.Array, epoch, num_examples: int) -> jax.Array:
    """Example order of ``epoch``: permutation(fold_in(key, epoch), N) -> [N] int32."""
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
    return perm.astype(jnp.int32)


def epoch_batches(
    key: jax.Array, epoch, num_examples: int, batch_size: int
) -> jax.Array:
    """The batches of ``epoch``: its permutation cut into [N // B, B] (tail dropped).

    Row j is the example indices of global step ``epoch * (N // B) + j``. ``epoch``
    may be traced.
    """
    steps_per_epoch = num_examples // batch_size
    perm = epoch_permutation(key, epoch, num_examples)
    return perm[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)


def dynamic_binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """x ~ Bernoulli(x) per pixel (Salakhutdinov & Murray 2008); same shape, float32."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


def pad_to_batches(x: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """x: [N, D] -> (xb [nb, B, D] zero-padded, mask [nb, B] float32), nb = ceil(N/B).

    Fixed-shape batches for evaluation: no recompiles, no dropped examples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    num_batches, rest = -(-len(x) // batch_size), x.shape[1:]
    padded = np.zeros((num_batches * batch_size, *rest), x.dtype)
    padded[: len(x)] = x
    mask = (np.arange(num_batches * batch_size) < len(x)).astype(np.float32)
    xb = padded.reshape(num_batches, batch_size, *rest)
    return xb, mask.reshape(num_batches, batch_size)


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
