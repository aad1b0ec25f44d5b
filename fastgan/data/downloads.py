"""Where the IDX datasets' files come from, each checked against its published SHA-256.

Each file is looked up in the cache folder (:func:`default_cache_dir` / name), then in the
dataset's system folder if it has one (Debian's ``/usr/share/datasets/fashion-mnist`` for
Fashion-MNIST, package ``dataset-fashion-mnist``), then downloaded from the mirrors in order. A
file is accepted when the SHA-256 of its bytes, or of its decompressed bytes, is a published
checksum (Debian recompresses the .gz files, so only their decompressed bytes match). Files are
re-hashed on every load: it costs a few hundredths of a second against the few tenths that
decompression takes, and catches a file damaged since.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from fastgan.errors import DataError
from fastgan.fileio import write_atomically

from .idx import gunzip_if_gzip, parse_idx, read_bytes

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0
"""Seconds a download may wait for the server before that mirror counts as failed."""


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset's files come from and the SHA-256 checksums that each may have.

    ``sha256`` maps each file name to the checksums accepted for it: of the file's bytes, or of
    its decompressed bytes. ``system_dir`` is a read-only folder searched after the cache, where
    the system package ``system_package`` installs the files.
    """

    mirrors: tuple[str, ...]
    sha256: Mapping[str, frozenset[str]]
    system_dir: Path | None = None
    system_package: str | None = None


IDX_SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": frozenset(
                {"440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"}
            ),
            "train-labels-idx1-ubyte.gz": frozenset(
                {"3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"}
            ),
            "t10k-images-idx3-ubyte.gz": frozenset(
                {"8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"}
            ),
            "t10k-labels-idx1-ubyte.gz": frozenset(
                {"f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}
            ),
        },
    ),
    "fashion-mnist": IdxSource(
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        # The canonical .gz file, then the decompressed bytes (Debian's recompressed copies).
        sha256={
            "train-images-idx3-ubyte.gz": frozenset(
                {
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                }
            ),
            "train-labels-idx1-ubyte.gz": frozenset(
                {
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                }
            ),
            "t10k-images-idx3-ubyte.gz": frozenset(
                {
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                }
            ),
            "t10k-labels-idx1-ubyte.gz": frozenset(
                {
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                }
            ),
        },
        system_dir=Path("/usr/share/datasets/fashion-mnist"),
        system_package="dataset-fashion-mnist (Debian, Ubuntu)",
    ),
}
"""The IDX datasets :func:`~fastgan.data.load` knows; tests replace entries to serve their own
files."""

def default_cache_dir() -> Path:
    """The download cache: $FASTGAN_DATA, else $XDG_CACHE_HOME/fastgan, else ~/.cache/fastgan."""
    override = os.environ.get("FASTGAN_DATA")
    if override:
        return Path(override).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    if xdg_cache and Path(xdg_cache).is_absolute():
        return Path(xdg_cache) / "fastgan"
    return Path.home() / ".cache" / "fastgan"


def idx_file(
    name: str, file: str, folder: Path, mirrors: Sequence[str] | None
) -> tuple[np.ndarray, Path]:
    """Find (cache, then system folder) or download one verified IDX file and parse it."""
    source = IDX_SOURCES[name]
    accepted = source.sha256[file]
    places = [folder] if source.system_dir is None else [folder, source.system_dir]
    path = next((place / file for place in places if (place / file).is_file()), None)
    if path is None:
        path = _download(name, file, folder, source.mirrors if mirrors is None else mirrors)
    data = _verified_idx_bytes(read_bytes(path), accepted, str(path))
    return parse_idx(data, source=str(path)), path


def _verified_idx_bytes(data: bytes, accepted: frozenset[str], source: str) -> bytes:
    """The decompressed IDX bytes, if *data* or its decompressed bytes has an accepted hash."""
    if _sha256(data) in accepted:
        return gunzip_if_gzip(data, source)
    try:
        raw = gunzip_if_gzip(data, source)
    except DataError:
        raw = None
    if raw is not None and _sha256(raw) in accepted:
        return raw
    raise DataError(
        f"{source}: checksum mismatch: SHA-256 {_sha256(data)} is not a published checksum "
        "of this file (nor of its decompressed bytes); delete it so it can be fetched again"
    )


def _download(name: str, file: str, folder: Path, mirrors: Sequence[str]) -> Path:
    """Fetch *file* into *folder* from the first mirror that serves it with a valid checksum."""
    source = IDX_SOURCES[name]
    target = folder / file
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create the cache folder {folder}: {error}; "
            "set FASTGAN_DATA to a writable folder"
        ) from error
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file
        logger.info("downloading %s", url)
        try:
            fetch_verified(url, target, source.sha256[file])
        except (DataError, OSError, ValueError, http.client.HTTPException) as error:
            failures.append(f"  {url}: {error}")
        else:
            return target
    tried = "\n".join(failures) if failures else "  (no mirrors were given)"
    others = ", ".join(sorted(set(source.sha256) - {file}))
    package = f", or install {source.system_package}" if source.system_package else ""
    system = f" (or in {source.system_dir}{package})" if source.system_dir else ""
    raise DataError(
        f"could not download {file} of {name}; each mirror failed:\n{tried}\n"
        f"Download it by hand and put it at {target}{system}; {name}'s other files "
        f"({others}) go in the same folder. Set FASTGAN_DATA to use another cache folder."
    )


def fetch_verified(url: str, target: Path, accepted: frozenset[str]) -> None:
    """Download *url*, check that its SHA-256 (or its decompressed bytes') is one of
    *accepted*, and only then put it at *target* (atomically)."""

    def download(out: IO[bytes]) -> None:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            announced = response.headers.get("Content-Length")
            payload = bytearray()
            while chunk := response.read(1 << 20):
                payload += chunk
        if announced is not None and announced.isdigit() and len(payload) != int(announced):
            raise DataError(f"truncated download: received {len(payload)} of {announced} bytes")
        _verified_idx_bytes(bytes(payload), accepted, url)
        out.write(payload)

    write_atomically(target, download)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
