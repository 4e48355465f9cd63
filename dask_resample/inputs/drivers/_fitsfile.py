"""FITS files for the FITS-based drivers: opening (local or by range from a URL), checks, writes.

A file is named by a :class:`~dask_resample.store.location.Location` (a local
path or an fsspec URL with its storage options), taken from the record
(``InputSource.location``, ``ExposureRef.location``). Files at URLs are never
copied to a local disk: :func:`open_fits` opens them lazily through fsspec,
so that astropy reads each header when it is reached and each HDU's data when
it is touched, every read one ranged request (plus :data:`READ_AHEAD` bytes).
A worker that reads an exposure's arrays (``open_fits(..., whole=True)``) takes
an object of at most :data:`WHOLE_READ_BYTES` in one request instead: a JWST
``*_cal.fits`` file has eight HDUs, whose headers and data would otherwise cost
sixteen requests, each a round trip and work for the server.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...store.location import Location, StorageError, as_location
from ..records import InputError, one_line

__all__ = [
    "BLOCK",
    "READ_AHEAD",
    "WHOLE_READ_BYTES",
    "check_hdulist",
    "fetch",
    "map_inputs",
    "open_fits",
    "primary_header",
    "write_file",
]

#: One FITS block: the first request of the client's check reads exactly this.
BLOCK = 2880

#: Bytes an fsspec file fetches beyond each read (its read-ahead cache): a header
#: read costs one request of about this size, an array read one request of its
#: size plus this.
READ_AHEAD = 64 * 1024

#: Largest object at a URL that ``open_fits(..., whole=True)`` fetches in one request
#: (held in memory while open, beside the arrays read from it); larger ones are read by range.
WHOLE_READ_BYTES = 128 * 1024**2

#: Threads checking URL inputs on the client (each check is one or two requests).
CHECK_THREADS = 16

#: How object stores say that the bucket itself is missing (said in the message when so).
_NO_BUCKET = ("bucket does not exist", "nosuchbucket", "no such bucket")


# ----------------------------------------------------------------------------
# client side: cheap checks
# ----------------------------------------------------------------------------
def primary_header(path: Path | Location, *, missing: str = "input file not found", head: bytes | None = None) -> Any:
    """The primary header, read without touching the rest of the file (cheap client-side check).

    A local file's header is read whole; at a URL only the first FITS block
    (2880 bytes) is fetched, by range, in one request, and the header parsed
    from it when it ends there or holds ``DATAMODL`` (the rest of a longer
    header is then left to the worker that describes the file).

    Parameters
    ----------
    path : Path or Location
        The file.
    missing : str
        The message (after the URL) for a missing object at a URL.
    head : bytes, optional
        The URL's first block, when the caller has fetched it already (not fetched again).

    Raises
    ------
    InputError
        If the file is missing or does not start like a FITS file.
    StorageError
        If the URL cannot be served (library, credentials, bucket), naming it and the fix.
    """
    from astropy.io import fits

    if not isinstance(path, Path):
        if not path.is_local:
            return _url_primary_header(path, missing, head)
        path = Path(path.url)
    if not path.exists():
        raise InputError(f"{path}: input file not found")
    if not path.is_file():
        raise InputError(f"{path}: input is not a file")
    with open(path, "rb") as fh:
        start = fh.read(30)
    if not start.startswith(b"SIMPLE  =") or b"T" not in start[9:30]:
        raise InputError(f"{path}: not a FITS file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fits.getheader(path, 0)
    except Exception as exc:
        raise InputError(f"{path}: not a readable FITS file ({one_line(exc)})") from None


def _url_primary_header(location: Location, missing: str, head: bytes | None = None) -> Any:
    from astropy.io import fits

    if head is None:
        head = fetch(location, end=BLOCK, missing=missing)
    if not head.startswith(b"SIMPLE  =") or b"T" not in head[9:30]:
        raise InputError(f"{location.url}: not a FITS file")
    cards = [head[k : k + 80] for k in range(0, len(head) - 79, 80)]
    ended = any(card.rstrip() == b"END" for card in cards)
    text = b"".join(c for c in cards if c.rstrip() != b"END").decode("ascii", "replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.Header.fromstring(text)
    except Exception as exc:
        raise InputError(f"{location.url}: not a readable FITS file ({one_line(exc)})") from None
    if ended or "DATAMODL" in header:
        return header
    with open_fits(location) as hdul:  # a long primary header without DATAMODL in its first block
        try:
            return hdul[0].header
        except Exception as exc:
            raise InputError(f"{location.url}: not a readable FITS file ({one_line(exc)})") from None


def fetch(location: Location, *, end: int | None = None, missing: str = "input file not found") -> bytes:
    """The bytes of a URL (the first ``end`` of them: one ranged request), with one-line errors.

    Raises
    ------
    InputError
        ``"<url>: <missing>"`` when no object is there.
    StorageError
        When the URL cannot be served: no file system for its scheme (the library
        to install), credentials, bucket, network; the message names the URL.
    """
    try:
        fs = location.fs
    except StorageError as exc:  # no file system for the scheme, or its library is missing
        raise StorageError(f"{location.url}: {exc}") from None
    try:
        return bytes(fs.cat_file(location.path, start=0 if end is not None else None, end=end))
    except FileNotFoundError as exc:
        detail = one_line(exc)
        no_bucket = any(s in detail.lower() for s in _NO_BUCKET)
        raise InputError(f"{location.url}: {missing}" + (f" ({detail})" if no_bucket else "")) from None
    except IsADirectoryError:
        raise InputError(f"{location.url}: input is not a file") from None
    except Exception as exc:  # the file system's own errors: credentials, permission, network
        raise StorageError(
            f"{location.url}: cannot read it ({type(exc).__name__}: {one_line(exc)}); check the "
            "URL and storage_options (credentials, endpoint_url)"
        ) from None


def map_inputs[T, R](check: Callable[[T], R], items: list[T], *, remote: bool) -> list[R]:
    """``[check(x) for x in items]``, in threads when ``remote`` (requests overlap); the first error in order."""
    if not remote or len(items) < 2:
        return [check(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(CHECK_THREADS, len(items))) as pool:
        return list(pool.map(check, items))


# ----------------------------------------------------------------------------
# worker side: opening and checking
# ----------------------------------------------------------------------------
@contextlib.contextmanager
def open_fits(location: Location, *, check: bool = False, whole: bool = False) -> Iterator[Any]:
    """Open a FITS file lazily (headers as reached, data when touched), by range at a URL.

    Parameters
    ----------
    location : Location
        A local path or a URL with its storage options.
    check : bool
        First check that the file is whole (:func:`check_hdulist`), reading every header.
    whole : bool
        At a URL, fetch an object of at most :data:`WHOLE_READ_BYTES` in one request
        (for callers that read most of its HDUs' data); local files are unaffected.

    Yields
    ------
    astropy.io.fits.HDUList
        Valid inside the ``with`` block only.
    """
    from astropy.io import fits

    try:
        fh = location.open("rb", block_size=READ_AHEAD, cache_type="readahead")
    except FileNotFoundError:
        hint = " (memory:// is private to each process: use scheduler='serial')" if location.scheme == "memory" else ""
        raise InputError(f"{location.url}: input file not found{hint}") from None
    with fh:
        if whole and not location.is_local and (fh.size or 0) <= WHOLE_READ_BYTES:
            fh = io.BytesIO(fh.read())  # one request; the fsspec file (closed by the with) made only the HEAD
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # truncation warnings become the InputError of the check
                hdul = fits.open(fh, memmap=False, lazy_load_hdus=True)
        except Exception as exc:
            raise InputError(f"{location.url}: not a readable FITS file ({one_line(exc)})") from None
        with hdul:
            if check:
                check_hdulist(hdul, fh, location.url)
            yield hdul


def check_hdulist(hdul: Any, fh: Any, name: str) -> None:
    """Check that an open FITS file is whole: every header readable, the HDUs filling the file.

    Reads every header (by range at a URL) and at most one block after the last HDU.

    Raises
    ------
    InputError
        If the file is truncated, corrupt or unreadable (the message names it).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            len(hdul)  # every header (no data)
            hdul.verify("exception")
            _check_fits_size(hdul, fh, name)
    except InputError:
        raise
    except Exception as exc:  # astropy raises many kinds for corrupt files
        raise InputError(f"{name}: not a readable FITS file ({one_line(exc)})") from None


def _check_fits_size(hdul: Any, fh: Any, name: str) -> None:
    """Raise :class:`InputError` if the HDUs do not exactly fill the file (truncated or corrupt)."""
    end = need = 0
    for k in range(len(hdul)):
        info = hdul.fileinfo(k)
        if info is None:
            continue
        end = max(end, int(info["datLoc"]) + int(info["datSpan"]))
        need = max(need, int(info["datLoc"]) + int(hdul[k].size))
    here = fh.tell()
    size = fh.seek(0, 2)
    try:
        if size < need:
            raise InputError(f"{name}: truncated FITS file ({size} bytes, its headers describe {need})")
        if size > end:
            fh.seek(end)
            tail = fh.read(BLOCK)
            if tail.strip(b"\0 "):
                raise InputError(
                    f"{name}: truncated or corrupt FITS file ({size - end} unreadable bytes after the last HDU)"
                )
    finally:
        fh.seek(here)


# ----------------------------------------------------------------------------
# writing (outlier detection's *_crf.fits files)
# ----------------------------------------------------------------------------
def write_file(
    target: str | Path | Location, write: Callable[[Path], None], storage_options: Mapping[str, Any] | None = None
) -> str:
    """Let ``write(path)`` make the file ``target``: a local path directly, a URL uploaded whole.

    Parameters
    ----------
    target : str, Path or Location
        A local path (written in place) or a URL (``write`` makes a local
        temporary file of the same name, uploaded in one request).
    write : callable
        Writes the file at the path it is given (whose name is the target's).
    storage_options : mapping, optional
        Options of the target's file system (for a str URL).

    Returns
    -------
    str
        The target's path or URL.
    """
    location = target if isinstance(target, Location) else as_location(str(target), storage_options)
    if location.is_local:
        write(Path(location.url))
        return location.url
    try:
        location.write_with(write)
    except (StorageError, InputError):
        raise
    except Exception as exc:
        raise StorageError(
            f"{location.url}: cannot write there ({one_line(exc)}); check the URL, the bucket "
            "and storage_options (credentials, endpoint_url)"
        ) from None
    return location.url
