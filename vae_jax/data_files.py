"""Finding and verifying data files.

Files are looked up, in order, in: the ``data_dir`` argument, ``$VAE_JAX_DATA``,
``../shared/data`` from the working directory and from the repository root, and
the user cache ``$XDG_CACHE_HOME/vae_jax`` (default ``~/.cache/vae_jax``).
Every file is sha256-verified before it is parsed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pathlib
import shutil
import urllib.request

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


def locate(relpaths: list[str], data_dir, download: bool) -> list[pathlib.Path]:
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


def aeon_data_dir() -> pathlib.Path | None:
    """``aeon/datasets/data`` of an installed aeon (``pip install 'vae_jax[timeseries]'``;
    its wheel ships a few UCR problems), found without importing aeon; else None."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    return (
        pathlib.Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    )


def locate_ucr(problem: str, data_dir, download: bool) -> list[pathlib.Path]:
    """``ucr/<problem>_{TRAIN,TEST}.ts`` from the searched directories, else from an
    installed aeon's data; checksummed either way."""
    relpaths = [f"ucr/{problem}_{split}.ts" for split in ("TRAIN", "TEST")]
    try:
        return locate(relpaths, data_dir, download)
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
