"""The papers' image data sets, downloaded once and verified: MNIST, Fashion-MNIST, CIFAR-10, SVHN.

The sources run their experiments on MNIST (LeCun et al. 1998, {cite}`lecun1998gradient`),
Fashion-MNIST (Xiao et al. 2017, {cite}`xiao2017fashion`), CIFAR-10 (Krizhevsky 2009,
{cite}`krizhevsky2009learning`) and the cropped digits of SVHN (Netzer et al. 2011,
{cite}`netzer2011reading`). This module returns them in the structures of
:mod:`ntkbook.data` (``(x, y)`` arrays, a class-balanced :class:`ntkbook.data.Split`), so a
chapter can swap the 8x8 digits for one of these without special code.

Files. :data:`FILES` is the one table of every file: its canonical URL, SHA-256 digest
and size in bytes, each with the place the digest was taken from. A file lives at
``$NTKBOOK_DATA/<data set>/<file name>`` (default ``$XDG_CACHE_HOME/ntkbook``, else
``~/.cache/ntkbook``). A missing file is downloaded only when the caller passes
``allow_download=True`` (only the ``paper`` preset does; at ``ci`` and ``book`` nothing
is ever downloaded, and a missing file is an error that says where to put it). The
download goes to a temporary file in the same folder, its size and SHA-256 are checked,
and only then is it moved into place with :func:`os.replace`: an interrupted or corrupted
download leaves no file that a later run would read. A cached file is checked against
its digest once per process (and again if its size or modification time changes).

``$NTKBOOK_DATA_MIRROR`` replaces the canonical URLs by a mirror with the cache's layout
(``<mirror>/<data set>/<file name>``): an ``http(s)://`` or ``file://`` base URL, or a
local folder (another machine's cache folder works). Mirrored files are verified against
the same digests. To download everything ahead of a run:
``python -c "from ntkbook import datasets; [datasets.fetch(n, allow_download=True) for n in datasets.NAMES]"``
(about 460 MB).

Pixel scaling (both return float32):

- ``normalize="pixels"``: the stored 8-bit values divided by 255, in ``[0, 1]``;
- ``normalize="sphere"`` (default, as for the digits): the ``"pixels"`` image minus
  its own mean over all pixels and channels, scaled to Euclidean norm ``sqrt(d)``,
  ``d = H * W * C`` (784 for MNIST and Fashion-MNIST, 3072 for CIFAR-10 and SVHN).
  A constant image (zero after centring) stays zero. There is no per-channel
  standardisation over the data set.

``flatten=True`` gives ``(n, d)``; ``flatten=False`` gives NHWC ``(n, H, W, C)`` (MNIST
and Fashion-MNIST have ``C = 1``; CIFAR-10's channel-major rows and SVHN's
``(H, W, C, n)`` arrays are transposed to NHWC). Labels are int32 in ``0..9``; SVHN
stores the digit 0 as label 10, mapped here to 0. SVHN's ``extra`` set (1.3 GB) is not
included.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import os
import pickle
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

from . import _checks, data, progress

DATA_VAR = "NTKBOOK_DATA"
MIRROR_VAR = "NTKBOOK_DATA_MIRROR"
NAMES: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10", "svhn")
SPLITS: tuple[str, ...] = ("train", "test")
#: Seconds a download may wait for the server before it counts as offline.
TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class Remote(NamedTuple):
    """Where one file comes from and what it must be: ``url``, ``sha256`` (hex), ``size`` (bytes)."""

    url: str
    sha256: str
    size: int


class Info(NamedTuple):
    """What a data set holds: image shape ``(H, W, C)``, class names, the real train/test sizes, its file per split."""

    shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    n_train: int
    n_test: int
    files: dict[str, tuple[str, ...]]  # split -> file names (keys of FILES[name])
    citation: str


_DIGITS = tuple(str(d) for d in range(10))

INFO: dict[str, Info] = {
    "mnist": Info((28, 28, 1), _DIGITS, 60000, 10000,
                  {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                   "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")},
                  "lecun1998gradient"),
    "fashion_mnist": Info((28, 28, 1), ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                        "Sneaker", "Bag", "Ankle boot"), 60000, 10000,
                          {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                           "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")},
                          "xiao2017fashion"),
    "cifar10": Info((32, 32, 3), ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                  "truck"), 50000, 10000,
                    {"train": ("cifar-10-python.tar.gz",), "test": ("cifar-10-python.tar.gz",)},
                    "krizhevsky2009learning"),
    "svhn": Info((32, 32, 3), _DIGITS, 73257, 26032,
                 {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
                 "netzer2011reading"),
}

# The one table of files: data set -> file name -> (URL, SHA-256, bytes). Tests (and a
# user with a private copy) may replace entries; every download and every cached file
# is checked against it. Sources of the digests and sizes:
#
# - mnist: tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt (commit
#   31f1255e57e5), URL, size and SHA-256 of each file. The URLs are the CVDF mirror that
#   TFDS downloads from: the original http://yann.lecun.com/exdb/mnist/ refuses
#   unauthenticated downloads; the files are the same four gzipped IDX files.
# - fashion_mnist: tensorflow/datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt
#   (commit 333639b37af6), URL, size and SHA-256 of each file.
# - cifar10 (the python pickle tarball): SHA-256 from tensorflow/datasets,
#   tensorflow_datasets/url_checksums/cifar10.csv (commit 2740d30f03c8), the same digest
#   as Keras' loader (tensorflow/tensorflow, tensorflow/python/keras/datasets/cifar10.py,
#   file_hash=...). TFDS's table for its own CIFAR-10 lists the binary tarball, not this
#   one, and neither source gives this file's size: 170498071 bytes is the Content-Length
#   the server sends, as recorded in public download logs (e.g. wget's
#   "Length: 170498071 (163M)", Keras' "170498071/170498071" progress lines). A wrong size
#   would only make every download fail loudly; the digest is what admits a file.
# - svhn: tensorflow/datasets, tensorflow_datasets/url_checksums/svhn_cropped.txt (commit
#   333639b37af6), URL, size and SHA-256 of train_32x32.mat and test_32x32.mat.
_TFDS_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_TFDS_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES: dict[str, dict[str, Remote]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": Remote(
            _TFDS_MNIST + "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        "train-labels-idx1-ubyte.gz": Remote(
            _TFDS_MNIST + "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        "t10k-images-idx3-ubyte.gz": Remote(
            _TFDS_MNIST + "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        "t10k-labels-idx1-ubyte.gz": Remote(
            _TFDS_MNIST + "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": Remote(
            _TFDS_FASHION + "train-images-idx3-ubyte.gz",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        "train-labels-idx1-ubyte.gz": Remote(
            _TFDS_FASHION + "train-labels-idx1-ubyte.gz",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        "t10k-images-idx3-ubyte.gz": Remote(
            _TFDS_FASHION + "t10k-images-idx3-ubyte.gz",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        "t10k-labels-idx1-ubyte.gz": Remote(
            _TFDS_FASHION + "t10k-labels-idx1-ubyte.gz",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    },
    "cifar10": {
        "cifar-10-python.tar.gz": Remote(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071),
    },
    "svhn": {
        "train_32x32.mat": Remote(
            "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
            "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", 182040794),
        "test_32x32.mat": Remote(
            "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
            "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", 64275384),
    },
}


# ------------------------------------------------------------------ errors
class DataFileError(OSError):
    """A data file is missing, could not be downloaded, or is not the file the table names."""


class MissingFileError(DataFileError, FileNotFoundError):
    """The file is not in the cache and downloading was not allowed."""


class DownloadError(DataFileError):
    """The download failed (offline, refused, cut short, too long): nothing was cached."""


class DigestMismatchError(DataFileError):
    """A downloaded or cached file has the wrong SHA-256 or size: it was not (or must not be) used."""


def _where(name: str, filename: str, path: Path, remote: Remote) -> str:
    return (f"  file:     {name}/{filename}\n"
            f"  URL:      {remote.url}\n"
            f"  SHA-256:  {remote.sha256} ({remote.size} bytes)\n"
            f"  path:     {path}\n"
            f"To place it by hand, download it from the URL (or copy it from another machine's cache) to the "
            f"path above; it is checked against the SHA-256 before use. ${DATA_VAR} moves the cache folder; "
            f"with allow_download=True, ${MIRROR_VAR} (a folder or base URL) replaces the URL by "
            f"<mirror>/{name}/{filename}.")


# ------------------------------------------------------------------ paths
def cache_dir() -> Path:
    """The cache folder: ``$NTKBOOK_DATA``, else ``$XDG_CACHE_HOME/ntkbook``, else ``~/.cache/ntkbook``."""
    value = os.environ.get(DATA_VAR, "").strip()
    if value:
        return Path(value).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "ntkbook").resolve()


def file_path(name: str, filename: str) -> Path:
    """Where ``filename`` of data set ``name`` lives (or will, once downloaded or placed)."""
    return cache_dir() / name / filename


def _mirror_base() -> str | None:
    value = os.environ.get(MIRROR_VAR, "").strip()
    if not value:
        return None
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if scheme in ("http", "https", "file"):
        return value.rstrip("/") + "/"
    if scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive letter
        raise ValueError(f"${MIRROR_VAR} must be an http(s):// or file:// base URL or a local folder, got {value!r}")
    folder = Path(value).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"${MIRROR_VAR}={value!r} is neither a URL nor an existing folder")
    return folder.as_uri().rstrip("/") + "/"


def source_url(name: str, filename: str) -> str:
    """The URL a file is downloaded from: the mirror's ``<name>/<filename>`` if ``$NTKBOOK_DATA_MIRROR`` is set."""
    base = _mirror_base()
    if base is None:
        return FILES[name][filename].url
    return base + urllib.parse.quote(f"{name}/{filename}")


def download_size(name: str) -> int:
    """Bytes to download for data set ``name`` (both splits)."""
    _checks.choice(name, "name", NAMES)
    return sum(FILES[name][f].size for f in {f for fs in INFO[name].files.values() for f in fs})


# ---------------------------------------------------------- fetch and verify
#: path -> (sha256, size, mtime_ns, inode) of files whose digest matched in this process.
_VERIFIED: dict[str, tuple[str, int, int, int]] = {}


def _signature(path: Path, sha256: str) -> tuple[str, int, int, int]:
    st = path.stat()
    return sha256, st.st_size, st.st_mtime_ns, st.st_ino


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_cached(name: str, filename: str, path: Path, remote: Remote) -> None:
    sig = _signature(path, remote.sha256)
    if _VERIFIED.get(str(path)) == sig:
        return
    size = sig[1]
    got = _sha256_of(path) if size == remote.size else None
    if got != remote.sha256:
        what = f"{size} bytes, expected {remote.size}" if got is None else f"SHA-256 {got}"
        raise DigestMismatchError(
            f"the cached {name} file is not the one expected ({what}); it was not used. Delete or replace it.\n"
            + _where(name, filename, path, remote))
    _VERIFIED[str(path)] = sig


def _bar(total: int, desc: str):
    """A byte-counting tqdm bar, or what :func:`ntkbook.progress.bar` gives in its ``summary`` mode."""
    how = progress.mode()
    if how == "summary":
        return progress.bar(total, desc)
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=how == "off",
                leave=True)


def _download(name: str, filename: str, path: Path, remote: Remote) -> None:
    """Download to a temporary file next to ``path``, check size and digest, then move it into place."""
    url = source_url(name, filename)
    shown = remote._replace(url=url)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=path.parent)
    try:
        h, n = hashlib.sha256(), 0
        request = urllib.request.Request(url, headers={"User-Agent": "ntkbook (python urllib)"})
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, \
                        _bar(remote.size, f"download {name}/{filename}") as bar:
                    while chunk := response.read(_CHUNK):
                        n += len(chunk)
                        if n > remote.size:
                            raise DownloadError(f"the server sent more than the expected {remote.size} bytes "
                                                f"for {name}/{filename}; nothing was cached.\n"
                                                + _where(name, filename, path, shown))
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:  # URLError and socket errors are OSErrors
                if isinstance(err, DataFileError):
                    raise
                reason = getattr(err, "reason", None) or err
                raise DownloadError(f"could not download {name}/{filename} ({type(err).__name__}: {reason}); "
                                    f"nothing was cached. Offline? See below to place the file by hand.\n"
                                    + _where(name, filename, path, shown)) from err
            out.flush()
            os.fsync(out.fileno())
        if n != remote.size:
            raise DownloadError(f"the download of {name}/{filename} stopped after {n} of {remote.size} bytes "
                                f"(connection dropped?); nothing was cached, the next call downloads again.\n"
                                + _where(name, filename, path, shown))
        got = h.hexdigest()
        if got != remote.sha256:
            raise DigestMismatchError(f"the downloaded {name}/{filename} has SHA-256 {got}, not the expected "
                                      f"digest; it was discarded and nothing was cached.\n"
                                      + _where(name, filename, path, shown))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache folder should be readable
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _VERIFIED[str(path)] = _signature(path, remote.sha256)


def _fetch_file(name: str, filename: str, allow_download: bool) -> Path:
    """The verified local path of one file, downloading it first if allowed."""
    remote = FILES[name][filename]
    path = file_path(name, filename)
    if path.is_file():
        _verify_cached(name, filename, path, remote)
        return path
    if not allow_download:
        raise MissingFileError(f"the {name} file {filename} is not in the cache and downloading is off "
                               f"(allow_download=False: only the paper preset downloads; ci and book never do).\n"
                               + _where(name, filename, path, remote._replace(url=source_url(name, filename))))
    _download(name, filename, path, remote)
    return path


def fetch(name: str, *, allow_download: bool = False) -> list[Path]:
    """Make sure every file of data set ``name`` is in the cache and verified; return their paths.

    Raises:
        MissingFileError: a file is missing and ``allow_download`` is false.
        DownloadError: a download failed (nothing was cached).
        DigestMismatchError: a downloaded or cached file does not match :data:`FILES`.
    """
    _checks.choice(name, "name", NAMES)
    _checks.boolean(allow_download, "allow_download")
    filenames = dict.fromkeys(f for fs in INFO[name].files.values() for f in fs)
    return [_fetch_file(name, f, allow_download) for f in filenames]


# ------------------------------------------------------------------ parsers
def _parse_idx(raw: bytes, ndim: int, what: str) -> np.ndarray:
    """An unsigned-byte IDX array (magic ``0x0000 08 ndim``, big-endian int32 dimensions)."""
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise ValueError(f"{what} is not an unsigned-byte IDX file with {ndim} dimensions (header {raw[:4]!r})")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{what}: the header promises {dims} = {int(np.prod(dims))} bytes, the file holds {body.size}")
    return body.reshape(dims)


def _read_idx_pair(name: str, images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    h, w, _ = INFO[name].shape
    with gzip.open(images, "rb") as f:
        x = _parse_idx(f.read(), 3, f"{name}/{images.name}")
    with gzip.open(labels, "rb") as f:
        y = _parse_idx(f.read(), 1, f"{name}/{labels.name}")
    if x.shape[1:] != (h, w) or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: images {x.shape} and labels {y.shape} do not make {h}x{w} labelled images")
    return x[..., None], y


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts of NumPy arrays, lists and bytes, nothing that runs code."""

    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # Python 3 writes bytes in protocol 2 through _codecs.encode

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):  # written by NumPy 1 (the real batches): same functions
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch "
                                         f"(only NumPy arrays are expected)")
        return super().find_class(module, name)


def _read_cifar(archive: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    members = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    # One pass over the archive, members read in memory (no extraction: no path in it is ever written).
    found: dict[str, bytes] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            if m.isfile() and Path(m.name).name in members:
                found[Path(m.name).name] = tar.extractfile(m).read()
    for member in members:
        if member not in found:
            raise ValueError(f"cifar10: {archive.name} has no member {member}")
        batch = _ArrayUnpickler(io.BytesIO(found[member]), encoding="bytes").load()
        if not isinstance(batch, dict):
            raise ValueError(f"cifar10: {member} holds a {type(batch).__name__}, not a dict of arrays")
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        x = np.asarray(batch["data"], dtype=np.uint8)
        y = np.asarray(batch["labels"], dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (x.shape[0],):
            raise ValueError(f"cifar10: {member} holds data {x.shape} and labels {y.shape}, "
                             f"not (n, 3072) and (n,)")
        xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # channel-major rows -> NHWC
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    mat = loadmat(path, variable_names=("X", "y"))
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise ValueError(f"svhn: {path.name} holds X {x.shape} and y {y.shape}, not (32, 32, 3, n) and (n, 1)")
    y = y.astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"svhn: {path.name} has labels {y.min()}..{y.max()}, expected 1..10")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2), dtype=np.uint8), y % 10  # label 10 is the digit 0


#: The last parsed (uint8 images, labels), keyed by data set, split and the files' digests.
_RAW: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_RAW_KEEP = 2


def _raw(name: str, split: str, allow_download: bool) -> tuple[np.ndarray, np.ndarray]:
    filenames = INFO[name].files[split]
    paths = [_fetch_file(name, f, allow_download) for f in filenames]
    key = (name, split) + tuple((str(p), FILES[name][f].sha256) for p, f in zip(paths, filenames))
    if key in _RAW:
        _RAW.move_to_end(key)
        return _RAW[key]
    if name in ("mnist", "fashion_mnist"):
        x, y = _read_idx_pair(name, *paths)
    elif name == "cifar10":
        x, y = _read_cifar(paths[0], split)
    else:
        x, y = _read_svhn(paths[0])
    if y.size and (y.min() < 0 or y.max() >= len(INFO[name].class_names)):
        raise ValueError(f"{name} {split}: labels {y.min()}..{y.max()} outside 0..{len(INFO[name].class_names) - 1}")
    x.setflags(write=False)
    y = y.astype(np.int32)
    y.setflags(write=False)
    _RAW[key] = (x, y)
    while len(_RAW) > _RAW_KEEP:
        _RAW.popitem(last=False)
    return x, y


def _scale(x: np.ndarray, how: str, flatten: bool) -> np.ndarray:
    n = x.shape[0]
    out = x.reshape(n, -1).astype(np.float32)
    out /= np.float32(255.0)  # in place: one float32 copy of the images, not two
    if how == "sphere":
        out -= out.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        out *= np.float32(np.sqrt(out.shape[1])) / np.where(norm > 0, norm, np.float32(1.0))
    return out if flatten else out.reshape(x.shape)


# ------------------------------------------------------------------ public
def load(name: str, split: str = "train", *, normalize: data.Normalize = "sphere", flatten: bool = True,
         allow_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All images of one split of a data set, scaled as the module docstring states.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"svhn"``.
        split: ``"train"`` or ``"test"`` (the data set's own test set).
        normalize: ``"pixels"`` (``[0, 1]``) or ``"sphere"`` (centred, norm ``sqrt(d)``).
        flatten: ``(n, d)`` if true, else NHWC ``(n, H, W, C)``.
        allow_download: download missing files (only the ``paper`` preset passes ``True``).

    Returns:
        ``(x, y)``: float32 images and int32 labels in ``0..9``, in the files' order.

    Raises:
        MissingFileError, DownloadError, DigestMismatchError: see :func:`fetch`.
    """
    _checks.choice(name, "name", NAMES)
    _checks.choice(split, "split", SPLITS)
    _checks.choice(normalize, "normalize", data.NORMALIZE)
    _checks.boolean(flatten, "flatten")
    _checks.boolean(allow_download, "allow_download")
    x, y = _raw(name, split, allow_download)
    return _scale(x, normalize, flatten), y.copy()


def split(
    name: str,
    n_train_per_class: int,
    n_test_per_class: int,
    key: jax.Array,
    *,
    classes: Sequence[int] | None = None,
    normalize: data.Normalize = "sphere",
    flatten: bool = True,
    relabel: bool = True,
    allow_download: bool = False,
) -> data.Split:
    """Class-balanced random subsets of a data set's train and test sets, as :func:`ntkbook.data.digits_split`.

    The training subset is drawn from the training set and the test subset from the
    test set (so they are disjoint), each with :func:`ntkbook.data.balanced_indices`
    under its own sub-key of ``key``.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"`` or ``"svhn"``.
        n_train_per_class: training images per class.
        n_test_per_class: test images per class.
        key: PRNG key choosing the subsets (from the chapter's config, e.g. ``cfg.key(0)``).
        classes: which classes to keep (default all ten), as integer labels.
        normalize, flatten, allow_download: as in :func:`load`.
        relabel: map ``classes`` to ``0..len(classes)-1`` (default).

    Returns:
        A :class:`ntkbook.data.Split`; both parts sorted by class.

    Raises:
        ValueError: a bad argument, or more images per class than the split holds.
        TypeError: ``key`` is not a PRNG key; ``flatten``, ``relabel`` or
            ``allow_download`` not a bool.
        MissingFileError, DownloadError, DigestMismatchError: see :func:`fetch`.
    """
    _checks.choice(name, "name", NAMES)
    n_train_per_class = _checks.positive_int(n_train_per_class, "n_train_per_class")
    n_test_per_class = _checks.positive_int(n_test_per_class, "n_test_per_class")
    _checks.key(key)
    _checks.choice(normalize, "normalize", data.NORMALIZE)
    _checks.boolean(flatten, "flatten")
    _checks.boolean(relabel, "relabel")
    _checks.boolean(allow_download, "allow_download")
    n_classes = len(INFO[name].class_names)
    if classes is not None:
        classes = _checks.positive_ints(classes, "classes", minimum=0)
    classes = list(range(n_classes)) if classes is None else list(classes)
    if len(set(classes)) != len(classes) or not set(classes) <= set(range(n_classes)):
        raise ValueError(f"classes must be distinct labels in 0..{n_classes - 1}, got {classes}")
    parts = []
    for part, per, k in (("train", n_train_per_class, "n_train_per_class"),
                         ("test", n_test_per_class, "n_test_per_class")):
        x, y = _raw(name, part, allow_download)
        smallest = int(np.bincount(y, minlength=n_classes)[classes].min())
        if per > smallest:
            raise ValueError(f"{k} = {per} exceeds the {smallest} images of the smallest requested class "
                             f"in {name}'s {part} set")
        parts.append((x, y))
    k_train, k_test = jax.random.split(key)
    lut = np.full(n_classes, -1, dtype=np.int32)
    lut[classes] = np.arange(len(classes), dtype=np.int32) if relabel else np.asarray(classes, np.int32)
    out = []
    for (x, y), per, k in zip(parts, (n_train_per_class, n_test_per_class), (k_train, k_test)):
        idx = data.balanced_indices(y, per, k, classes)
        out += [_scale(x[idx], normalize, flatten), lut[y[idx]]]
    return data.Split(*out)
