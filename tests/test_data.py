"""Tests of fastgan.data: IDX parsing, verified downloads, every loader, filters and batching."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgan import data
from fastgan.errors import ConfigError, DataError

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode *array* as an IDX file, independently of the parser under test."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim])
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def tiny_mnist(n: int = 20, seed: int = 0) -> dict[str, bytes]:
    """Four small IDX .gz files in MNIST's layout: n 4x4 train images, n // 2 test images."""
    rng = np.random.default_rng(seed)
    files = {}
    for (images_file, labels_file), count in ((TRAIN_FILES, n), (TEST_FILES, n // 2)):
        images = rng.integers(0, 256, size=(count, 4, 4), dtype=np.uint8)
        labels = (np.arange(count) % 5).astype(np.uint8)
        files[images_file] = gzip.compress(idx_bytes(images), mtime=0)
        files[labels_file] = gzip.compress(idx_bytes(labels), mtime=0)
    return files


def use_source(monkeypatch, name, files, mirrors=(), system_dir=None):
    """Make *name* an IDX dataset whose checksums are those of *files*."""
    checksums = {file: frozenset({sha256(payload)}) for file, payload in files.items()}
    source = data.IdxSource(mirrors=tuple(mirrors), sha256=checksums, system_dir=system_dir)
    monkeypatch.setitem(data.IDX_SOURCES, name, source)


class FileServer:
    """An HTTP server on 127.0.0.1 serving bytes the test puts in ``routes``."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404, "File not found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                sent = body[: len(body) // 2] if self.path in server.truncate else body
                self.wfile.write(sent)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, folder: str, files: dict[str, bytes]) -> str:
        """Serve *files* under /folder/ and return that mirror's base URL."""
        for file, payload in files.items():
            self.routes[f"/{folder}/{file}"] = payload
        return f"{self.url}/{folder}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    file_server = FileServer()
    yield file_server
    file_server.close()


def cached_files(cache: Path) -> list[str]:
    """Every file under the cache folder, hidden temp files included."""
    return sorted(path.name for path in cache.rglob("*") if path.is_file())


# --- IDX parser ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=lambda dtype: dtype.name)
def test_parse_idx_round_trips_every_dtype_code(dtype):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    parsed = data.parse_idx(idx_bytes(array))
    assert parsed.dtype == dtype and parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, array)


def test_parse_idx_reads_one_dimension_and_empty_arrays():
    np.testing.assert_array_equal(data.parse_idx(idx_bytes(np.arange(7, dtype=np.int32))), range(7))
    assert data.parse_idx(idx_bytes(np.zeros((0, 28, 28), np.uint8))).shape == (0, 28, 28)


VALID = idx_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("blob", "fault"),
    [
        (b"\x00\x00\x08", "too short"),
        (b"\x01" + VALID[1:], "magic number"),
        (VALID[:2] + b"\x07" + VALID[3:], "unknown IDX data type code 0x07"),
        (VALID[:3] + b"\x00", "zero dimensions"),
        (VALID[:10], "truncated"),
        (VALID[:-1], "truncated"),
        (VALID + b"\x00", "1 trailing bytes"),
        (VALID[:3] + b"\x02" + VALID[4:], "trailing bytes"),
    ],
    ids=[
        "short",
        "magic",
        "dtype",
        "zero-dims",
        "short-header",
        "short-payload",
        "trailing",
        "wrong-ndim",
    ],
)
def test_parse_idx_names_source_and_fault(blob, fault):
    with pytest.raises(DataError, match=fault) as caught:
        data.parse_idx(blob, source="some.idx")
    assert str(caught.value).startswith("some.idx: ")


def test_read_idx_reads_raw_and_gzip(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    (tmp_path / "raw").write_bytes(idx_bytes(array))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "raw"), array)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "packed.gz")), array)


@pytest.mark.parametrize(
    ("payload", "fault"),
    [
        (gzip.compress(VALID)[:-6], "corrupt or truncated gzip"),
        (gzip.compress(VALID)[:12] + b"garbage" * 4, "corrupt or truncated gzip"),
        (gzip.compress(VALID[:-4]), "truncated"),
    ],
    ids=["cut-gzip", "bad-deflate", "short-payload"],
)
def test_read_idx_rejects_corrupt_gzip(tmp_path, payload, fault):
    path = tmp_path / "bad.gz"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=fault) as caught:
        data.read_idx(path)
    assert str(path) in str(caught.value)


def test_read_idx_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        data.read_idx(tmp_path / "absent.gz")


def parses_or_data_error(blob: bytes) -> None:
    try:
        result = data.parse_idx(blob)
    except DataError:
        return
    assert isinstance(result, np.ndarray)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_parse_idx_arbitrary_bytes(blob):
    parses_or_data_error(blob)


@settings(max_examples=300, deadline=None)
@given(
    header=st.binary(min_size=2, max_size=2),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=70),
    code=st.sampled_from([*IDX_CODES.values(), 0x00, 0x0A, 0xFF]),
    payload=st.binary(max_size=64),
)
def test_fuzz_parse_idx_mutated_headers(header, dims, code, payload):
    ndim = len(dims) % 256
    blob = header + bytes([code, ndim]) + struct.pack(f">{len(dims)}I", *dims) + payload
    parses_or_data_error(blob)
    parses_or_data_error(b"\x00\x00" + blob[2:])


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, len(VALID) - 1), value=st.integers(0, 255), cut=st.integers(0, 80))
def test_fuzz_parse_idx_single_byte_mutations_and_cuts(position, value, cut):
    mutated = bytearray(VALID)
    mutated[position] = value
    parses_or_data_error(bytes(mutated))
    parses_or_data_error(VALID[:cut])


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 200), flip=st.integers(0, 199), payload=st.binary(max_size=40))
def test_fuzz_read_idx_damaged_gzip(tmp_path_factory, cut, flip, payload):
    packed = bytearray(gzip.compress(VALID + payload))
    if flip < len(packed):
        packed[flip] ^= 0xFF
    path = tmp_path_factory.mktemp("fuzz") / "file.gz"
    path.write_bytes(bytes(packed[:cut]) if cut < len(packed) else bytes(packed))
    with contextlib.suppress(DataError):
        data.read_idx(path)


# --- MNIST-style datasets: cache, system folder, downloads -------------------------------


def test_download_verifies_and_caches(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    mirror = server.serve("good", files)
    dataset = data.load("mnist", cache_dir=tmp_path, mirrors=[mirror])
    assert dataset.x.shape == (20, 16) and dataset.x.dtype == np.float32
    assert dataset.image_shape == (4, 4)
    images = data.read_idx(tmp_path / "mnist" / TRAIN_FILES[0]).reshape(20, 16)
    np.testing.assert_allclose(dataset.x, images / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(dataset.y, np.arange(20) % 5)
    assert cached_files(tmp_path) == sorted(TRAIN_FILES)

    server.routes.clear()  # now served from the cache alone
    again = data.load("mnist", cache_dir=tmp_path, mirrors=[mirror])
    assert again.sha256 == dataset.sha256
    test = data.load("mnist", split="test", cache_dir=tmp_path, mirrors=[server.serve("t", files)])
    assert test.x.shape == (10, 16)


def test_default_mirrors_come_from_the_source_table(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files, mirrors=[server.serve("table", files)])
    assert len(data.load("mnist", cache_dir=tmp_path)) == 20


def test_checksum_mismatch_leaves_cache_empty(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    mirror = server.serve("wrong", tiny_mnist(seed=1))
    with pytest.raises(DataError, match="checksum mismatch") as caught:
        data.load("mnist", cache_dir=tmp_path, mirrors=[mirror])
    assert mirror + TRAIN_FILES[0] in str(caught.value)
    assert cached_files(tmp_path) == []


def test_first_mirror_404_then_second_works(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    missing = f"{server.url}/missing/"
    dataset = data.load("mnist", cache_dir=tmp_path, mirrors=[missing, server.serve("ok", files)])
    assert len(dataset) == 20
    assert server.requests[:2] == [f"/missing/{TRAIN_FILES[0]}", f"/ok/{TRAIN_FILES[0]}"]
    assert cached_files(tmp_path) == sorted(TRAIN_FILES)


def test_truncated_download_is_an_error_and_leaves_cache_empty(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    mirror = server.serve("cut", files)
    server.truncate.add(f"/cut/{TRAIN_FILES[0]}")
    with pytest.raises(DataError, match="truncated download"):
        data.load("mnist", cache_dir=tmp_path, mirrors=[mirror])
    assert cached_files(tmp_path) == []


def test_short_file_with_honest_length_fails_its_checksum(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    short = {file: payload[:-10] for file, payload in files.items()}
    with pytest.raises(DataError, match="checksum mismatch"):
        data.load("mnist", cache_dir=tmp_path, mirrors=[server.serve("short", short)])
    assert cached_files(tmp_path) == []


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_offline_error_lists_mirrors_and_where_to_put_the_files(monkeypatch, tmp_path):
    use_source(monkeypatch, "mnist", tiny_mnist())
    mirrors = [closed_port_url(), "http://127.0.0.1:9/also-down/"]
    with pytest.raises(DataError) as caught:
        data.load("mnist", cache_dir=tmp_path, mirrors=mirrors)
    message = str(caught.value)
    assert all(mirror + TRAIN_FILES[0] in message for mirror in mirrors)
    assert str(tmp_path / "mnist" / TRAIN_FILES[0]) in message
    assert "FASTGAN_DATA" in message
    assert cached_files(tmp_path) == []


def test_offline_error_for_fashion_mentions_debian_folder(monkeypatch, tmp_path):
    use_source(monkeypatch, "fashion-mnist", tiny_mnist(), system_dir=tmp_path / "nowhere")
    with pytest.raises(DataError, match="nowhere"):
        data.load("fashion-mnist", cache_dir=tmp_path, mirrors=[closed_port_url()])


def test_damaged_cache_file_is_reported_not_replaced(monkeypatch, server, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    (tmp_path / "mnist").mkdir()
    damaged = tmp_path / "mnist" / TRAIN_FILES[0]
    damaged.write_bytes(b"not the file")
    with pytest.raises(DataError, match="checksum mismatch") as caught:
        data.load("mnist", cache_dir=tmp_path, mirrors=[server.serve("ok", files)])
    assert str(damaged) in str(caught.value)
    assert damaged.read_bytes() == b"not the file"


def test_system_folder_found_and_checked_by_decompressed_bytes(monkeypatch, tmp_path):
    raw = {file: gzip.decompress(payload) for file, payload in tiny_mnist().items()}
    system_dir = tmp_path / "debian"
    system_dir.mkdir()
    for file, payload in raw.items():  # recompressed: only the decompressed hash matches
        (system_dir / file).write_bytes(gzip.compress(payload, compresslevel=1, mtime=12345))
    use_source(monkeypatch, "fashion-mnist", raw, system_dir=system_dir)
    dataset = data.load("fashion-mnist", cache_dir=tmp_path / "cache", mirrors=[])
    assert dataset.x.shape == (20, 16)
    assert not (tmp_path / "cache").exists()


def test_image_and_label_counts_must_agree(monkeypatch, tmp_path):
    files = tiny_mnist()
    files[TRAIN_FILES[1]] = gzip.compress(idx_bytes(np.zeros(19, np.uint8)))
    use_source(monkeypatch, "mnist", files)
    (tmp_path / "mnist").mkdir()
    for file, payload in files.items():
        (tmp_path / "mnist" / file).write_bytes(payload)
    with pytest.raises(DataError, match=r"20 images but .* 19 labels"):
        data.load("mnist", cache_dir=tmp_path)


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTGAN_DATA", str(tmp_path / "mine"))
    assert data.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("FASTGAN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == tmp_path / "xdg" / "fastgan"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "fastgan"


def test_load_uses_default_cache_dir(monkeypatch, tmp_path):
    files = tiny_mnist()
    use_source(monkeypatch, "mnist", files)
    (tmp_path / "mnist").mkdir()
    for file, payload in files.items():
        (tmp_path / "mnist" / file).write_bytes(payload)
    monkeypatch.setenv("FASTGAN_DATA", str(tmp_path))
    assert len(data.load("mnist", mirrors=[])) == 20


@pytest.mark.skipif(
    not DEBIAN_FASHION.is_dir(),
    reason=f"{DEBIAN_FASHION} absent (Debian package dataset-fashion-mnist not installed)",
)
def test_real_fashion_mnist_from_debian_package(tmp_path):
    train = data.load("fashion-mnist", cache_dir=tmp_path, mirrors=[])
    assert train.x.shape == (60000, 784) and train.image_shape == (28, 28)
    assert train.x.min() == -1 and train.x.max() == 1
    np.testing.assert_array_equal(np.bincount(train.y), np.full(10, 6000))
    test = data.load("fashion-mnist", split="test", cache_dir=tmp_path, mirrors=[])
    assert test.x.shape == (10000, 784)
    np.testing.assert_array_equal(np.bincount(test.y), np.full(10, 1000))
    assert not (tmp_path / "fashion-mnist").exists()


# --- digits, ring, user files ------------------------------------------------------------


def test_digits_train_and_test_split_sklearn_set_in_order():
    from sklearn.datasets import load_digits

    train, test = data.load("digits"), data.load("digits", split="test")
    assert train.x.shape == (1500, 64) and test.x.shape == (297, 64)
    assert train.image_shape == (8, 8)
    assert train.x.min() == -1 and train.x.max() == 1
    assert set(train.y) == set(range(10)) and set(test.y) == set(range(10))
    reference = load_digits()
    np.testing.assert_array_equal(np.concatenate([train.x, test.x]), reference.data / 8 - 1)
    np.testing.assert_array_equal(np.concatenate([train.y, test.y]), reference.target)


def test_dataset_arrays_are_read_only_and_fingerprinted():
    digits = data.load("digits")
    assert not digits.x.flags.writeable and not digits.y.flags.writeable
    assert digits.n_features == 64 and len(digits) == 1500
    assert data.load("digits").sha256 == digits.sha256
    assert data.load("digits", classes=[3]).sha256 != digits.sha256


def test_class_filter_and_first_n():
    threes = data.load("digits", classes=[3])
    assert len(threes) > 100 and set(threes.y) == {3}
    pair = data.load("digits", classes=(3, 5), n=10)
    assert len(pair) == 10 and set(pair.y) <= {3, 5}
    np.testing.assert_array_equal(data.load("digits", n=10).x, data.load("digits").x[:10])


def test_class_filter_errors(tmp_path):
    with pytest.raises(DataError, match="class 11 does not occur in digits"):
        data.load("digits", classes=[3, 11])
    np.savez(tmp_path / "plain.npz", x=np.zeros((4, 3), np.uint8))
    with pytest.raises(DataError, match="no labels"):
        data.load(str(tmp_path / "plain.npz"), classes=[0])
    with pytest.raises(ConfigError, match="empty"):
        data.load("digits", classes=[])


def test_ring_shape_range_and_modes():
    points = data.ring()
    centres = data.ring_modes()
    assert points.x.shape == (4096, 2) and points.image_shape is None
    assert np.abs(points.x).max() <= 1
    assert centres.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 0.8)
    nearest = np.argmin(((points.x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest, points.y)
    assert set(points.y) == set(range(8))
    same = data.load("ring", n=4096, seed=0)
    np.testing.assert_array_equal(same.x, points.x)
    assert data.ring(seed=1).sha256 != points.sha256


def test_ring_stays_inside_unit_square_even_when_wide():
    wide = data.ring(2000, modes=3, radius=0.95, std=0.2, seed=2)
    assert np.abs(wide.x).max() <= 1 and set(wide.y) == {0, 1, 2}
    with pytest.raises(ConfigError, match="radius"):
        data.ring_modes(radius=1.2)


def test_npz_uint8_images_with_labels(tmp_path):
    x = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5) * 8
    np.savez(tmp_path / "d.npz", x=x, y=np.array([4, 7]))
    dataset = data.load(str(tmp_path / "d.npz"))
    assert dataset.image_shape == (3, 5) and dataset.x.shape == (2, 15)
    np.testing.assert_allclose(dataset.x, x.reshape(2, 15) / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(dataset.y, [4, 7])
    assert dataset.y.dtype == np.int64


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (np.array([[0.0, 0.5], [1.0, 0.25]]), np.array([[-1.0, 0.0], [1.0, -0.5]])),
        (np.array([[-0.5, 0.5], [1.0, 0.25]]), np.array([[-0.5, 0.5], [1.0, 0.25]])),
    ],
    ids=["zero-one", "minus-one-one"],
)
def test_npz_float_ranges_are_detected(tmp_path, x, expected):
    np.savez(tmp_path / "f.npz", x=x)
    dataset = data.load(str(tmp_path / "f.npz"))
    assert dataset.image_shape is None
    np.testing.assert_allclose(dataset.x, expected)


def test_npz_channels_become_greyscale(tmp_path):
    rgb = np.zeros((2, 3, 4, 3), np.uint8)
    rgb[0, ..., 0] = 255  # pure red
    rgb[1] = 255  # white
    np.savez(tmp_path / "rgb.npz", x=rgb)
    grey = data.load(str(tmp_path / "rgb.npz"))
    assert grey.image_shape == (3, 4)
    np.testing.assert_allclose(grey.x[0], 0.299 * 2 - 1, atol=1e-5)
    np.testing.assert_allclose(grey.x[1], 1, atol=1e-6)
    np.savez(tmp_path / "one.npz", x=rgb[..., :1])
    np.testing.assert_allclose(data.load(str(tmp_path / "one.npz")).x[0], 1, atol=1e-6)


@pytest.mark.parametrize("keep", [0.3, 0.9], ids=["head-cut", "tail-cut"])
def test_truncated_npz_is_a_data_error(tmp_path, keep):
    whole = tmp_path / "whole.npz"
    np.savez(whole, x=np.zeros((50, 40), np.uint8), y=np.zeros(50, np.int64))
    blob = whole.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(DataError, match=r"cannot read this \.npz file"):
        data.load(str(cut))


def test_npz_resized_with_image_size(tmp_path):
    np.savez(tmp_path / "big.npz", x=np.full((3, 8, 8), 255, np.uint8))
    small = data.load(str(tmp_path / "big.npz"), image_size=4)
    assert small.image_shape == (4, 4) and small.x.shape == (3, 16)
    np.testing.assert_allclose(small.x, 1)
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 8), np.uint8))
    with pytest.raises(ConfigError, match="not image data"):
        data.load(str(tmp_path / "flat.npz"), image_size=4)


@pytest.mark.parametrize(
    ("arrays", "fault"),
    [
        ({"x": np.array([[0.0, 2.0]])}, r"spans \[0.0, 2.0\]"),
        ({"x": np.array([[np.nan, 0.5]])}, "NaN"),
        ({"x": np.array([[300, 1]])}, "0..255"),
        ({"x": np.zeros((2, 3, 3, 2), np.uint8)}, "got shape"),
        ({"x": np.zeros(5, np.uint8)}, "at least one sample"),
        ({"x": np.zeros((2, 2), np.uint8), "y": np.zeros(3, int)}, "one integer label"),
        ({"x": np.zeros((2, 2), np.uint8), "y": np.zeros(2)}, "one integer label"),
        ({"images": np.zeros((2, 2), np.uint8)}, "no array named 'x'"),
        ({"x": np.array([[None, 1]], dtype=object)}, "cannot read"),
    ],
    ids=["range", "nan", "int-range", "channels", "1-d", "y-length", "y-float", "no-x", "pickle"],
)
def test_npz_bad_contents(tmp_path, arrays, fault):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=fault) as caught:
        data.load(str(path))
    assert str(path) in str(caught.value)


def test_npz_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        data.load(str(tmp_path / "absent.npz"))


def write_image(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def test_image_folder_greyscale_in_name_order(tmp_path):
    write_image(tmp_path / "b.png", np.full((5, 4), 255, np.uint8))
    write_image(tmp_path / "a.png", np.zeros((5, 4, 3), np.uint8))
    write_image(tmp_path / "c.bmp", np.full((5, 4), 51, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = data.load(str(tmp_path))
    assert dataset.x.shape == (3, 20) and dataset.image_shape == (5, 4) and dataset.y is None
    np.testing.assert_allclose(dataset.x[:, 0], [-1, 1, 51 / 127.5 - 1], atol=1e-6)


def test_image_folder_sizes_must_agree_unless_resized(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((5, 4), np.uint8))
    write_image(tmp_path / "b.png", np.full((9, 7), 255, np.uint8))
    with pytest.raises(DataError, match="image_size"):
        data.load(str(tmp_path))
    dataset = data.load(str(tmp_path), image_size=(6, 3))
    assert dataset.image_shape == (6, 3) and dataset.x.shape == (2, 18)
    np.testing.assert_allclose(dataset.x[0], -1)
    np.testing.assert_allclose(dataset.x[1], 1)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no image files"):
        data.load(str(tmp_path))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png: cannot read this image"):
        data.load(str(tmp_path))
    with pytest.raises(ConfigError, match="no split 'test'"):
        data.load(str(tmp_path), split="test")


def test_unknown_names_and_bad_options():
    with pytest.raises(ConfigError, match="digits, mnist, fashion-mnist, ring"):
        data.load("cifar-10")
    assert data.names() == ["digits", "mnist", "fashion-mnist", "ring"]
    with pytest.raises(ConfigError, match="no split 'valid'"):
        data.load("digits", split="valid")
    with pytest.raises(ConfigError, match="image_size"):
        data.load("digits", image_size=(8, 0))
    with pytest.raises(ConfigError, match="image_size"):
        data.load("digits", image_size="big")
    with pytest.raises(ConfigError, match="n must be"):
        data.load("digits", n=0)


def test_digits_resized():
    resized = data.load("digits", image_size=(4, 6), n=5)
    assert resized.image_shape == (4, 6) and resized.x.shape == (5, 24)
    assert np.abs(resized.x).max() <= 1


# --- batching ----------------------------------------------------------------------------


def test_epoch_batches_are_full_and_from_one_permutation():
    batches = list(data.epoch_batches(12, 3, np.random.default_rng(0)))
    assert len(batches) == 4 and all(batch.shape == (3,) for batch in batches)
    assert sorted(np.concatenate(batches)) == list(range(12))
    dropped = list(data.epoch_batches(10, 3, np.random.default_rng(0)))
    assert len(dropped) == 3 and len(set(np.concatenate(dropped))) == 9


def test_epoch_batches_deterministic_per_seed_and_fresh_per_epoch():
    def epoch(rng):
        return np.concatenate(list(data.epoch_batches(100, 10, rng)))

    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    first_a, first_b = epoch(rng_a), epoch(rng_b)
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(epoch(rng_a), first_a)
    with pytest.raises(ConfigError, match="larger than the dataset"):
        data.epoch_batches(5, 6, rng_a)


def test_random_batches_are_endless_with_replacement():
    batches = data.random_batches(4, 16, np.random.default_rng(0))
    drawn = [next(batches) for _ in range(50)]
    assert all(batch.shape == (16,) and batch.min() >= 0 and batch.max() < 4 for batch in drawn)
    same = data.random_batches(4, 16, np.random.default_rng(0))
    np.testing.assert_array_equal(next(same), drawn[0])
    with pytest.raises(ConfigError, match="batch size"):
        data.random_batches(4, 0, np.random.default_rng(0))
