"""Parsing data files: IDX, ``.npz``, MATLAB ``.mat`` and ``.ts`` files (gzip if named
*.gz), each into NumPy arrays, or DataCorruptError saying why not."""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zipfile
import zlib

import numpy as np

from vae_jax.data_files import DataCorruptError


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


# What scipy.io.loadmat raises on a damaged or foreign file, besides MatReadError
# (truncated: OSError "could not read bytes"; v7.3/HDF5: NotImplementedError).
_MAT_ERRORS = (ValueError, OSError, EOFError, IndexError, NotImplementedError)


def read_mat(path: pathlib.Path, name: str) -> np.ndarray:
    """The variable ``name`` of a MATLAB ``.mat`` file, else DataCorruptError."""
    import scipy.io  # lazy: only the .mat reader needs it

    try:
        mat = scipy.io.loadmat(str(path))
    except (scipy.io.matlab.MatReadError, *_MAT_ERRORS) as e:
        raise DataCorruptError(f"{path}: not a readable MATLAB file ({e}).") from e
    if name not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise DataCorruptError(f"{path}: no variable {name!r} (it holds {names}).")
    return mat[name]


_NPZ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error)


def read_npz(path: pathlib.Path, keys: tuple[str, ...]) -> list[np.ndarray]:
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
