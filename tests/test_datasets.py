"""ntkbook.datasets against a loopback HTTP server: parsing, verification, the failure modes.

Each test starts an ``http.server`` on 127.0.0.1 (an ephemeral port, in a thread) that
serves small fixture files written in each real format (gzipped IDX, the CIFAR-10
python tarball, the SVHN ``.mat``), and points the module's file table
(:data:`ntkbook.datasets.FILES`, the documented hook) at it with the fixtures' own
digests. Every socket connection a test opens is checked to go to 127.0.0.1, so no test
touches the internet.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import http.server
import io
import pickle
import re
import socket
import tarfile
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.io import savemat

from ntkbook import data, datasets

KEY = jax.random.PRNGKey(0)
PER_CLASS = {"train": 5, "test": 2}  # images per class in every fixture split


# ------------------------------------------------------------------ fixture files
def _labels(split: str, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(10), PER_CLASS[split])).astype(np.uint8)


def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes()
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


def _cifar_tarball(x_train, y_train, x_test, y_test, *, evil: bool = False) -> bytes:
    def rows(x):  # NHWC -> the file's channel-major rows (R plane, G plane, B plane)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))

    batches = {f"data_batch_{i + 1}": (x_train[i::5], y_train[i::5]) for i in range(5)}
    batches["test_batch"] = (x_test, y_test)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member, (x, y) in batches.items():
            content = {b"batch_label": member.encode(), b"labels": [int(v) for v in y], b"data": rows(x),
                       b"filenames": [f"{member}_{i}.png".encode() for i in range(len(y))]}
            if evil and member == "data_batch_1":
                content[b"labels"] = _Evil()
            blob = pickle.dumps(content, protocol=2)  # the real batches are protocol-2 pickles
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


CALLED = []


def _record(*args):
    CALLED.append(args)


class _Evil:
    """Unpickles by calling a function: what a tampered pickle would do."""

    def __reduce__(self):
        return (_record, ("the pickle ran code",))


def _svhn_mat(x: np.ndarray, y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    stored = np.where(y == 0, 10, y).astype(np.uint8)[:, None]  # SVHN stores the digit 0 as 10
    savemat(buf, {"X": np.ascontiguousarray(x.transpose(1, 2, 3, 0)), "y": stored})
    return buf.getvalue()


def make_fixtures() -> tuple[dict, dict]:
    """``(files, expected)``: name -> file name -> bytes, and name -> split -> (uint8 NHWC images, labels)."""
    rng = np.random.default_rng(20261205)
    files, expected = {}, {}
    for name in datasets.NAMES:
        shape = datasets.INFO[name].shape
        expected[name] = {}
        for split in ("train", "test"):
            y = _labels(split, rng)
            x = rng.integers(0, 256, size=(len(y), *shape), dtype=np.uint8)
            expected[name][split] = (x, y)
        (xtr, ytr), (xte, yte) = expected[name]["train"], expected[name]["test"]
        if name in ("mnist", "fashion_mnist"):
            files[name] = {"train-images-idx3-ubyte.gz": _idx(xtr[..., 0]), "train-labels-idx1-ubyte.gz": _idx(ytr),
                           "t10k-images-idx3-ubyte.gz": _idx(xte[..., 0]), "t10k-labels-idx1-ubyte.gz": _idx(yte)}
        elif name == "cifar10":
            files[name] = {"cifar-10-python.tar.gz": _cifar_tarball(xtr, ytr, xte, yte)}
        else:
            files[name] = {"train_32x32.mat": _svhn_mat(xtr, ytr), "test_32x32.mat": _svhn_mat(xte, yte)}
    # The CIFAR-10 training batches are read in order 1..5: reorder the expected train set the same way.
    xtr, ytr = expected["cifar10"]["train"]
    order = np.concatenate([np.arange(i, len(ytr), 5) for i in range(5)])
    expected["cifar10"]["train"] = (xtr[order], ytr[order])
    return files, expected


FILES_BYTES, EXPECTED = make_fixtures()


# ------------------------------------------------------------------ the server
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server's name)
        site = self.server.site
        site.requests.append(self.path)
        body = site.served.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in site.drop:  # promise the whole file, send half, close the connection
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Site:
    """A loopback server and the table entries that point at it."""

    def __init__(self):
        self.requests: list[str] = []
        self.served: dict[str, bytes] = {}
        self.drop: set[str] = set()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.site = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.01), daemon=True)
        self.thread.start()
        self.table = {}
        for name, files in FILES_BYTES.items():
            self.table[name] = {}
            for filename, body in files.items():
                path = f"/canonical/{name}/{filename}"
                self.served[path] = body
                self.table[name][filename] = datasets.Remote(f"http://127.0.0.1:{self.port}{path}",
                                                             hashlib.sha256(body).hexdigest(), len(body))

    def url_path(self, name: str, filename: str) -> str:
        return f"/canonical/{name}/{filename}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site(tmp_path, monkeypatch):
    real = socket.create_connection

    def loopback_only(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"a test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)
    s = Site()
    monkeypatch.setattr(datasets, "FILES", s.table)
    monkeypatch.setattr(datasets, "_VERIFIED", {})
    monkeypatch.setattr(datasets, "_RAW", collections.OrderedDict())
    monkeypatch.setenv("NTKBOOK_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("NTKBOOK_DATA_MIRROR", raising=False)
    monkeypatch.setenv("NTKBOOK_PROGRESS", "off")
    s.cache = tmp_path / "cache"
    yield s
    s.stop()


def cached_files(root: Path) -> list[str]:
    """Every file under the cache folder, temporary ones included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def new_process():
    """Forget what this process verified and parsed, as a fresh interpreter would."""
    datasets._VERIFIED.clear()
    datasets._RAW.clear()


def assert_names_everything(message: str, site: Site, name: str, filename: str, url: str | None = None):
    remote = datasets.FILES[name][filename]
    assert filename in message
    assert (url or remote.url) in message
    assert remote.sha256 in message
    assert str(site.cache / name / filename) in message


# ------------------------------------------------------------------ tests
def test_every_url_points_at_the_loopback_server(site):
    urls = [r.url for files in datasets.FILES.values() for r in files.values()]
    assert len(urls) == 11 and all(u.startswith(f"http://127.0.0.1:{site.port}/") for u in urls)
    with pytest.raises(AssertionError, match="tried to reach"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.01)  # the guard itself (TEST-NET, never routed)


@pytest.mark.parametrize("name", datasets.NAMES)
@pytest.mark.parametrize("split", ["train", "test"])
def test_parses_each_format_to_the_fixture_contents(site, name, split):
    x_raw, y_raw = EXPECTED[name][split]
    x, y = datasets.load(name, split, normalize="pixels", flatten=False, allow_download=True)
    h, w, c = datasets.INFO[name].shape
    assert x.shape == (len(y_raw), h, w, c) and x.dtype == np.float32
    assert y.dtype == np.int32 and set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(y, y_raw)
    np.testing.assert_array_equal(x, x_raw.astype(np.float32) / 255)  # exact: the same float32 division
    assert 0.0 <= x.min() and x.max() <= 1.0
    flat, _ = datasets.load(name, split, normalize="pixels", allow_download=True)
    np.testing.assert_array_equal(flat, x.reshape(len(y), -1))


def test_svhn_label_10_is_the_digit_0(site):
    mat = FILES_BYTES["svhn"]["test_32x32.mat"]
    from scipy.io import loadmat

    stored = loadmat(io.BytesIO(mat))["y"].ravel()
    assert stored.min() == 1 and stored.max() == 10  # the fixture really uses SVHN's coding
    _, y = datasets.load("svhn", "test", allow_download=True)
    np.testing.assert_array_equal(y, np.where(stored == 10, 0, stored))
    assert (y == 0).sum() == (stored == 10).sum() == PER_CLASS["test"]


def test_cifar_rows_are_transposed_to_nhwc(site):
    x, _ = datasets.load("cifar10", "test", normalize="pixels", flatten=False, allow_download=True)
    raw, _ = EXPECTED["cifar10"]["test"]
    rows = raw.transpose(0, 3, 1, 2).reshape(len(raw), 3072)  # as stored: R plane, G plane, B plane
    i, r, col, ch = 3, 5, 7, 2
    assert x[i, r, col, ch] * 255 == pytest.approx(rows[i, ch * 1024 + r * 32 + col])


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_sphere_scaling_centres_each_image_on_the_sphere_of_radius_sqrt_d(site, name):
    x, _ = datasets.load(name, "test", allow_download=True)
    pixels, _ = datasets.load(name, "test", normalize="pixels", allow_download=True)
    d = int(np.prod(datasets.INFO[name].shape))
    assert x.shape[1] == d and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.sqrt(d), rtol=1e-5)
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-5)
    centred = pixels - pixels.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(x, centred * np.sqrt(d) / np.linalg.norm(centred, axis=1, keepdims=True), rtol=1e-5,
                               atol=1e-6)


def test_split_is_class_balanced_and_draws_train_and_test_from_their_own_sets(site):
    s = datasets.split("fashion_mnist", 3, 2, KEY, normalize="pixels", allow_download=True)
    assert isinstance(s, data.Split)
    assert s.x_train.shape == (30, 784) and s.x_test.shape == (20, 784)
    np.testing.assert_array_equal(s.y_train, np.repeat(np.arange(10), 3))  # sorted by class
    np.testing.assert_array_equal(s.y_test, np.repeat(np.arange(10), 2))
    for xs, ys, split in ((s.x_train, s.y_train, "train"), (s.x_test, s.y_test, "test")):
        x_raw, y_raw = EXPECTED["fashion_mnist"][split]
        pool = x_raw.reshape(len(x_raw), -1).astype(np.float32) / 255
        for row, label in zip(xs, ys):
            hits = np.flatnonzero((pool == row).all(axis=1))
            assert len(hits) == 1 and y_raw[hits[0]] == label
    again = datasets.split("fashion_mnist", 3, 2, KEY, normalize="pixels", allow_download=True)
    np.testing.assert_array_equal(again.x_train, s.x_train)
    other = datasets.split("fashion_mnist", 3, 2, jax.random.PRNGKey(1), normalize="pixels", allow_download=True)
    assert not np.array_equal(other.x_train, s.x_train)


def test_split_keeps_and_relabels_the_requested_classes(site):
    s = datasets.split("svhn", 2, 1, KEY, classes=[7, 0], flatten=False, allow_download=True)
    assert s.x_train.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(s.y_train, [0, 0, 1, 1])  # 7 -> 0, 0 -> 1, in the order asked
    raw = datasets.split("svhn", 2, 1, KEY, classes=[7, 0], relabel=False, allow_download=True)
    np.testing.assert_array_equal(raw.y_test, [7, 0])


def test_split_refuses_more_images_per_class_than_the_set_holds(site):
    with pytest.raises(ValueError, match="n_test_per_class = 3 exceeds the 2 images"):
        datasets.split("mnist", 2, 3, KEY, allow_download=True)


def test_without_allow_download_a_missing_file_is_refused_with_where_to_put_it(site):
    with pytest.raises(datasets.MissingFileError) as info:
        datasets.load("mnist")
    msg = str(info.value)
    assert "allow_download=False" in msg
    assert_names_everything(msg, site, "mnist", "train-images-idx3-ubyte.gz")
    assert site.requests == [] and cached_files(site.cache) == []
    with pytest.raises(datasets.MissingFileError):
        datasets.split("cifar10", 1, 1, KEY)
    assert site.requests == []


def test_a_digest_mismatch_is_refused_and_nothing_is_cached(site):
    path = site.url_path("mnist", "t10k-labels-idx1-ubyte.gz")
    good = site.served[path]
    site.served[path] = good[:-1] + bytes([good[-1] ^ 1])  # same size, one bit flipped
    with pytest.raises(datasets.DigestMismatchError) as info:
        datasets.load("mnist", "test", allow_download=True)
    msg = str(info.value)
    assert hashlib.sha256(site.served[path]).hexdigest() in msg  # the digest it got
    assert_names_everything(msg, site, "mnist", "t10k-labels-idx1-ubyte.gz")
    assert path in site.requests
    assert cached_files(site.cache) == ["mnist/t10k-images-idx3-ubyte.gz"]  # the good file only, no .part
    site.served[path] = good
    _, y = datasets.load("mnist", "test", allow_download=True)
    np.testing.assert_array_equal(y, EXPECTED["mnist"]["test"][1])


def test_a_connection_dropped_mid_file_caches_nothing_and_the_next_call_downloads_again(site):
    path = site.url_path("svhn", "test_32x32.mat")
    site.drop.add(path)
    with pytest.raises(datasets.DownloadError, match=r"stopped after \d+ of \d+ bytes") as info:
        datasets.load("svhn", "test", allow_download=True)
    assert_names_everything(str(info.value), site, "svhn", "test_32x32.mat")
    assert site.requests == [path] and cached_files(site.cache) == []
    site.drop.clear()
    x, y = datasets.load("svhn", "test", allow_download=True)
    assert site.requests == [path, path]
    assert cached_files(site.cache) == ["svhn/test_32x32.mat"]
    np.testing.assert_array_equal(y, EXPECTED["svhn"]["test"][1])


def test_more_bytes_than_the_table_says_are_refused_and_nothing_is_cached(site):
    path = site.url_path("cifar10", "cifar-10-python.tar.gz")
    site.served[path] += b"\0" * 10
    with pytest.raises(datasets.DownloadError, match="more than the expected"):
        datasets.load("cifar10", "test", allow_download=True)
    assert cached_files(site.cache) == []


def test_an_interrupted_download_leaves_no_file(site, monkeypatch):
    class Interrupting:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            raise KeyboardInterrupt  # Ctrl-C after the first chunk was written

    monkeypatch.setattr(datasets, "_bar", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        datasets.load("svhn", "test", allow_download=True)
    assert cached_files(site.cache) == []


def test_a_cache_hit_makes_no_request(site):
    datasets.load("mnist", "train", allow_download=True)
    assert len(site.requests) == 2
    datasets.load("mnist", "train", allow_download=True)
    datasets.split("mnist", 1, 1, KEY, allow_download=True)  # the test files are new: two more
    assert len(site.requests) == 4
    new_process()
    x, y = datasets.load("mnist", "train")  # verified from disk, downloads off, no request
    assert len(site.requests) == 4
    np.testing.assert_array_equal(y, EXPECTED["mnist"]["train"][1])


def test_a_cached_file_is_checked_once_per_process_and_refused_if_changed(site, monkeypatch):
    datasets.load("svhn", "test", allow_download=True)
    calls = []
    real = datasets._sha256_of
    monkeypatch.setattr(datasets, "_sha256_of", lambda p: calls.append(p) or real(p))
    datasets.load("svhn", "test")
    assert calls == []  # verified when downloaded, in this process
    new_process()
    datasets.load("svhn", "test")
    datasets.load("svhn", "test")
    assert len(calls) == 1  # once per process
    cached = site.cache / "svhn" / "test_32x32.mat"
    body = bytearray(cached.read_bytes())
    body[100] ^= 1
    cached.write_bytes(bytes(body))  # corrupted on disk (or a wrong file placed by hand)
    for _ in range(2):  # a changed file is re-verified even in the same process
        with pytest.raises(datasets.DigestMismatchError, match="not the one expected") as info:
            datasets.load("svhn", "test", allow_download=True)
        assert_names_everything(str(info.value), site, "svhn", "test_32x32.mat")
    assert cached.exists() and len(site.requests) == 1  # not deleted, not re-downloaded: the user decides
    cached.write_bytes(bytes(body[:-5]))
    with pytest.raises(datasets.DigestMismatchError, match="bytes, expected"):
        datasets.load("svhn", "test")


def test_offline_error_names_file_url_digest_and_path(site, monkeypatch):
    dead = _unused_port()
    table = {n: {f: r._replace(url=r.url.replace(f":{site.port}/", f":{dead}/")) for f, r in files.items()}
             for n, files in site.table.items()}
    monkeypatch.setattr(datasets, "FILES", table)
    with pytest.raises(datasets.DownloadError, match="could not download") as info:
        datasets.load("cifar10", allow_download=True)
    msg = str(info.value)
    assert_names_everything(msg, site, "cifar10", "cifar-10-python.tar.gz")
    assert "place" in msg and "NTKBOOK_DATA_MIRROR" in msg
    assert cached_files(site.cache) == []
    site.stop()  # and with the server gone altogether
    monkeypatch.setattr(datasets, "FILES", site.table)
    with pytest.raises(datasets.DownloadError) as info:
        datasets.load("mnist", "test", allow_download=True)
    assert_names_everything(str(info.value), site, "mnist", "t10k-images-idx3-ubyte.gz")


def test_ntkbook_data_chooses_the_cache_folder(site, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("NTKBOOK_DATA", str(elsewhere))
    assert datasets.cache_dir() == elsewhere.resolve()
    paths = datasets.fetch("svhn", allow_download=True)
    assert paths == [elsewhere / "svhn" / "train_32x32.mat", elsewhere / "svhn" / "test_32x32.mat"]
    assert cached_files(elsewhere) == ["svhn/test_32x32.mat", "svhn/train_32x32.mat"]
    assert cached_files(site.cache) == []


def test_default_cache_folder_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("NTKBOOK_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.cache_dir() == (tmp_path / "xdg" / "ntkbook").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == (tmp_path / "home" / ".cache" / "ntkbook").resolve()


def test_an_http_mirror_replaces_the_canonical_urls(site, monkeypatch):
    for name, files in FILES_BYTES.items():
        for filename, body in files.items():
            site.served[f"/mirror/{name}/{filename}"] = body
    monkeypatch.setenv("NTKBOOK_DATA_MIRROR", f"http://127.0.0.1:{site.port}/mirror")
    datasets.load("fashion_mnist", "test", allow_download=True)
    assert site.requests == ["/mirror/fashion_mnist/t10k-images-idx3-ubyte.gz",
                             "/mirror/fashion_mnist/t10k-labels-idx1-ubyte.gz"]
    site.drop.add("/mirror/mnist/t10k-images-idx3-ubyte.gz")
    with pytest.raises(datasets.DownloadError) as info:  # the error names the mirror URL it used
        datasets.load("mnist", "test", allow_download=True)
    assert f"http://127.0.0.1:{site.port}/mirror/mnist/t10k-images-idx3-ubyte.gz" in str(info.value)


def test_a_local_folder_mirror_is_copied_and_verified(site, monkeypatch, tmp_path):
    folder = tmp_path / "mirror"
    for filename, body in FILES_BYTES["mnist"].items():
        (folder / "mnist").mkdir(parents=True, exist_ok=True)
        (folder / "mnist" / filename).write_bytes(body)
    monkeypatch.setenv("NTKBOOK_DATA_MIRROR", str(folder))
    _, y = datasets.load("mnist", "test", allow_download=True)
    np.testing.assert_array_equal(y, EXPECTED["mnist"]["test"][1])
    assert site.requests == []
    bad = folder / "mnist" / "train-labels-idx1-ubyte.gz"
    body = bad.read_bytes()
    bad.write_bytes(body[:-1] + bytes([body[-1] ^ 1]))
    with pytest.raises(datasets.DigestMismatchError):
        datasets.load("mnist", "train", allow_download=True)
    assert "mnist/train-labels-idx1-ubyte.gz" not in cached_files(site.cache)


@pytest.mark.parametrize("value", ["ftp://example.org/data", "/no/such/folder/for/ntkbook"])
def test_a_bad_mirror_value_is_refused_by_name(site, monkeypatch, value):
    monkeypatch.setenv("NTKBOOK_DATA_MIRROR", value)
    with pytest.raises(ValueError, match="NTKBOOK_DATA_MIRROR"):
        datasets.load("mnist", allow_download=True)
    assert site.requests == []


def test_a_cifar_pickle_that_would_run_code_is_refused(site, monkeypatch):
    (xtr, ytr), (xte, yte) = EXPECTED["cifar10"]["train"], EXPECTED["cifar10"]["test"]
    body = _cifar_tarball(xtr, ytr, xte, yte, evil=True)
    site.served[site.url_path("cifar10", "cifar-10-python.tar.gz")] = body
    # As if someone had also changed the table to the tampered file's digest.
    site.table["cifar10"]["cifar-10-python.tar.gz"] = site.table["cifar10"]["cifar-10-python.tar.gz"]._replace(
        sha256=hashlib.sha256(body).hexdigest(), size=len(body))
    CALLED.clear()
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        datasets.load("cifar10", "train", allow_download=True)
    assert CALLED == []


def test_downloads_drive_a_byte_progress_bar(site, monkeypatch):
    bars = []

    class Recording:
        def __init__(self, total, desc):
            self.total, self.desc, self.n = total, desc, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

    monkeypatch.setattr(datasets, "_bar", Recording)
    datasets.fetch("svhn", allow_download=True)
    assert [(b.desc, b.n, b.total) for b in bars] == [
        (f"download svhn/{f}", len(FILES_BYTES["svhn"][f]), len(FILES_BYTES["svhn"][f]))
        for f in ("train_32x32.mat", "test_32x32.mat")]


def test_the_real_table_lists_every_file_with_a_digest_and_size():
    for name in datasets.NAMES:
        wanted = {f for fs in datasets.INFO[name].files.values() for f in fs}
        assert set(datasets.FILES[name]) == wanted
        for filename, remote in datasets.FILES[name].items():
            assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256), (name, filename)
            assert remote.size > 0 and remote.url.startswith(("http://", "https://"))
            assert remote.url.endswith("/" + filename)
    sizes = {n: datasets.download_size(n) for n in datasets.NAMES}
    assert sizes == {"mnist": 11594722, "fashion_mnist": 30878645, "cifar10": 170498071, "svhn": 246316178}
