"""Tests for vae_jax.data and the file layers under it (data_files: discovery,
checksums; data_formats: IDX parsing): loading, damaged files, splits."""

import gzip
import struct

import numpy as np
import pytest

from vae_jax import data, data_files, data_formats


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write(path, payload: bytes, compress: bool):
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def _load_or_skip(name, **kwargs):
    try:
        return data.load_dataset(name, **kwargs)
    except data.DataNotFoundError:
        pytest.skip(f"{name} files not found")


# ---------------------------------------------------------------- IDX parsing
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = _write(tmp_path / ("x.gz" if compress else "x"), _idx_bytes(array), compress)
    out = data_formats.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)
    labels = np.array([3, 1, 4], np.uint8)
    path = _write(
        tmp_path / ("y.gz" if compress else "y"), _idx_bytes(labels), compress
    )
    np.testing.assert_array_equal(data_formats.read_idx(path), labels)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-1],  # truncated data
        lambda b: b + b"\x00",  # trailing byte
        lambda b: b[:6],  # truncated header
        lambda b: b"\x00\x00\x09" + b[3:],  # int8, not uint8
        lambda b: b"\x01" + b[1:],  # bad magic
        lambda b: b"",  # empty
    ],
    ids=["truncated", "trailing", "short_header", "dtype", "magic", "empty"],
)
def test_read_idx_rejects_corrupt(tmp_path, compress, mutate):
    payload = mutate(_idx_bytes(np.zeros((4, 2, 2), np.uint8)))
    path = _write(
        tmp_path / ("sample-idx.gz" if compress else "sample-idx"), payload, compress
    )
    with pytest.raises(data.DataCorruptError, match="sample-idx"):
        data_formats.read_idx(path)


@pytest.mark.parametrize(
    "payload", [b"not gzip at all", None], ids=["garbage", "cut_gzip"]
)
def test_read_idx_rejects_bad_gzip(tmp_path, payload):
    if payload is None:  # a valid gzip stream cut in the middle
        payload = gzip.compress(_idx_bytes(np.zeros((50, 7), np.uint8)))[:-10]
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(payload)
    with pytest.raises(data.DataCorruptError, match="bad-idx1-ubyte.gz"):
        data_formats.read_idx(path)


def test_label_checks():
    images = np.zeros((3, 28, 28), np.uint8)
    data._check_labeled(images, np.array([0, 9, 5], np.uint8), "imgs", "labs")
    with pytest.raises(data.DataCorruptError, match="labs: label 10 outside"):
        data._check_labeled(images, np.array([0, 10, 5], np.uint8), "imgs", "labs")
    with pytest.raises(data.DataCorruptError, match="imgs: images are"):
        data._check_labeled(images[:, :27], np.array([0, 1, 2]), "imgs", "labs")


def test_label_count_mismatch_names_both_files():
    images = np.zeros((3, 28, 28), np.uint8)
    with pytest.raises(data.DataCorruptError) as err:
        data._check_labeled(images, np.array([0, 1], np.uint8), "imgs.gz", "labs.gz")
    assert "labs.gz" in str(err.value) and "imgs.gz" in str(err.value)


# ---------------------------------------------------------------- damaged files
@pytest.fixture
def unchecked(isolated_search, monkeypatch):
    """A data directory whose files skip the sha256 check (as if it matched)."""
    monkeypatch.setattr(data_files, "verify_checksum", lambda path, expected: None)
    return isolated_search / "files"


def _frey_file(root, payload: bytes | None = None, **variables):
    import scipy.io

    path = root / "frey_faces" / "frey_rawface.mat"
    path.parent.mkdir(parents=True)
    if payload is None:
        scipy.io.savemat(path, variables)
    else:
        path.write_bytes(payload)
    return path


@pytest.mark.parametrize(
    "variables,payload,message",
    [
        ({"faces": np.zeros((560, 3), np.uint8)}, None, "no variable 'ff'.*faces"),
        ({}, b"not a MATLAB file at all " * 20, "not a readable MATLAB file"),
        ({}, b"MATLAB", "not a readable MATLAB file"),
        ({"ff": np.zeros((10, 3), np.uint8)}, None, "want \\[560, N\\]"),
    ],
    ids=["no_ff", "garbage", "truncated", "wrong_shape"],
)
def test_damaged_frey_file_names_path_and_problem(
    unchecked, variables, payload, message
):
    path = _frey_file(unchecked, payload, **variables)
    with pytest.raises(data.DataCorruptError, match=message) as err:
        data.load_dataset("frey_faces", data_dir=str(unchecked))
    assert str(path) in str(err.value)


def test_truncated_frey_file(unchecked):
    path = _frey_file(unchecked, ff=np.zeros((560, 300), np.uint8))
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(data.DataCorruptError, match="not a readable MATLAB file"):
        data.load_dataset("frey_faces", data_dir=str(unchecked))


def _npz_path(root):
    path = root / "binarized_mnist" / "binarized_mnist.npz"
    path.parent.mkdir(parents=True)
    return path


def test_npz_missing_key_names_path_and_key(unchecked):
    path = _npz_path(unchecked)
    split = np.zeros((2, 784), np.uint8)
    np.savez(path, train=split, test=split)
    with pytest.raises(data.DataCorruptError, match="no array 'valid'") as err:
        data.load_dataset("binarized_mnist", data_dir=str(unchecked))
    assert str(path) in str(err.value) and "['test', 'train']" in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [b"garbage bytes " * 10, b"PK\x03\x04" + b"x" * 100, b"", None],
    ids=["garbage", "bad_zip", "empty", "cut_zip"],
)
def test_npz_garbage_is_a_corrupt_file(unchecked, payload):
    path = _npz_path(unchecked)
    if payload is None:  # a real archive cut short
        split = np.zeros((2, 784), np.uint8)
        np.savez(path, train=split, valid=split, test=split)
        payload = path.read_bytes()[:-40]
    path.write_bytes(payload)
    with pytest.raises(data.DataCorruptError, match="not a readable .npz") as err:
        data.load_dataset("binarized_mnist", data_dir=str(unchecked))
    assert str(path) in str(err.value)


def test_npy_in_place_of_npz(unchecked):
    path = _npz_path(unchecked)
    with open(path, "wb") as f:  # np.save would append .npy to the name
        np.save(f, np.zeros((2, 784), np.uint8))
    with pytest.raises(data.DataCorruptError, match="not an .npz archive"):
        data.load_dataset("binarized_mnist", data_dir=str(unchecked))


# ---------------------------------------------------------------- discovery, checksums
def test_checksum_mismatch_names_file(isolated_search):
    root = isolated_search / "fake"
    (root / "mnist").mkdir(parents=True)
    for name in data.IDX_NAMES:  # valid IDX content, but not the real files
        shape = (10, 28, 28) if "images" in name else (10,)
        _write(root / "mnist" / name, _idx_bytes(np.zeros(shape, np.uint8)), True)
    with pytest.raises(
        data.DataCorruptError, match="train-images-idx3-ubyte.gz"
    ) as err:
        data.load_dataset("mnist", data_dir=str(root))
    assert data_files.SHA256["mnist/train-images-idx3-ubyte.gz"] in str(err.value)


def test_verify_checksum(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    data_files.verify_checksum(
        path, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    with pytest.raises(data.DataCorruptError, match="f.bin"):
        data_files.verify_checksum(path, "0" * 64)


@pytest.mark.parametrize(
    "name", ["mnist", "fashion_mnist", "frey_faces", "binarized_mnist"]
)
def test_not_found_lists_files_and_dirs(isolated_search, name):
    empty = isolated_search / "empty"
    empty.mkdir()
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_dataset(name, data_dir=str(empty))
    message = str(err.value)
    expected = [p for p in data_files.SHA256 if p.startswith(name + "/")]
    assert expected and all(p in message for p in expected)
    for d in data_files.search_dirs(str(empty)):
        assert str(d) in message
    assert "VAE_JAX_DATA" in message and "download=True" in message


def test_search_order_and_find_file(isolated_search):
    tmp = isolated_search
    dirs = data_files.search_dirs(str(tmp / "arg"))
    assert dirs == [
        tmp / "arg",
        tmp / "env",
        tmp / "work" / "shared" / "data",
        tmp / "repo" / "shared" / "data",
        tmp / "cache" / "vae_jax",
    ]
    for d in (dirs[1], dirs[3]):
        (d / "a").mkdir(parents=True)
        (d / "a" / "f.txt").write_text(str(d))
    assert data_files.find_file("a/f.txt", str(tmp / "arg")) == dirs[1] / "a" / "f.txt"
    with pytest.raises(data.DataNotFoundError, match="b/g.txt"):
        data_files.find_file("b/g.txt")


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="binarized_mnist"):
        data.load_dataset("cifar10")


# ---------------------------------------------------------------- small datasets
@pytest.mark.parametrize(
    "name,n,dim,shape", [("digits", 1797, 64, (8, 8)), ("synthetic", 640, 16, (4, 4))]
)
def test_small_datasets(name, n, dim, shape):
    ds = data.load_dataset(name, seed=3)
    splits = (ds.train, ds.valid, ds.test)
    labels = (ds.train_labels, ds.valid_labels, ds.test_labels)
    assert (
        sum(len(x) for x in splits) == n and ds.dim == dim and ds.image_shape == shape
    )
    for x, y in zip(splits, labels):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1] == dim
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == np.int32 and y.shape == (len(x),)
    again = data.load_dataset(name, seed=3)
    other = data.load_dataset(name, seed=4)
    np.testing.assert_array_equal(again.train, ds.train)
    np.testing.assert_array_equal(again.test_labels, ds.test_labels)
    assert not np.array_equal(other.train, ds.train)


def test_digits_splits_partition_the_data():
    from sklearn.datasets import load_digits

    ds = data.load_dataset("digits", valid_size=150, seed=1)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (1350, 150, 297)
    full = np.concatenate([ds.train, ds.valid, ds.test])
    ref = load_digits().data.astype(np.float32) / 16.0
    # Same multiset of rows as the original: the splits partition one permutation.
    np.testing.assert_array_equal(full[np.lexsort(full.T)], ref[np.lexsort(ref.T)])
    assert np.all(np.isin(ds.train * 16, np.arange(17)))


def test_valid_size_bounds():
    assert len(data.load_dataset("digits", valid_size=0).valid) == 0
    with pytest.raises(ValueError, match="valid_size"):
        data.load_dataset("digits", valid_size=1500)
    with pytest.raises(ValueError, match="valid_size"):
        data.load_dataset("synthetic", valid_size=-1)


# ---------------------------------------------------------------- real data (may skip)
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets(name):
    ds = _load_or_skip(name)
    assert ds.train.shape == (50000, 784) and ds.valid.shape == (10000, 784)
    assert (
        ds.test.shape == (10000, 784) and ds.image_shape == (28, 28) and not ds.binary
    )
    for x, y in (
        (ds.train, ds.train_labels),
        (ds.valid, ds.valid_labels),
        (ds.test, ds.test_labels),
    ):
        assert (
            x.dtype == np.float32
            and 0.0 <= x.min()
            and x.max() <= 1.0
            and x.flags.c_contiguous
        )
        assert y.dtype == np.int32 and y.min() == 0 and y.max() == 9
    small = data.load_dataset(name, valid_size=0)
    assert small.train.shape == (60000, 784) and small.valid.shape == (0, 784)
    # Validation is the tail of the training file.
    np.testing.assert_array_equal(small.train[50000:], ds.valid)
    np.testing.assert_array_equal(small.train[:50000], ds.train)


def test_frey_faces():
    ds = _load_or_skip("frey_faces")
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (1665, 100, 200)
    assert ds.dim == 560 and ds.image_shape == (28, 20) and ds.train_labels is None
    assert (
        ds.train.dtype == np.float32 and 0.0 <= ds.train.min() and ds.train.max() <= 1.0
    )
    np.testing.assert_array_equal(data.load_dataset("frey_faces").test, ds.test)


def test_binarized_mnist():
    ds = _load_or_skip("binarized_mnist")
    assert [len(x) for x in (ds.train, ds.valid, ds.test)] == [50000, 10000, 10000]
    assert ds.binary and ds.dim == 784 and ds.test_labels is None
    assert set(np.unique(ds.train)) == {0.0, 1.0}
    assert int(ds.train.sum()) == 5118041  # README: number of ones in the train split
