"""Where things are stored: a local path or any fsspec URL, behind one small interface.

Every file and object the package writes or reads outside the input drivers goes
through :class:`Location`: the mosaic's Zarr store, its progress markers, the
tile partials, kept pixel maps, outlier masks and medians, ``*_crf.fits`` files.
A location is a local path (``/data/m.zarr``, ``m.zarr``, ``file:///data/m.zarr``)
or a URL of any file system that fsspec knows (``s3://``, ``gs://``, ``az://``,
``memory://``, ...), with its ``storage_options`` (credentials, ``endpoint_url``).
No URL is ever turned into a local path.

Writes are object-store safe: an object is written whole, in one request (one
PUT, or one multipart upload that becomes visible only when complete), so a
reader never sees half of it; on a local disk the same is done with a temporary
file and a rename. Nothing relies on rename or on listing being cheap elsewhere.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Location", "StorageError", "as_location", "check_output_location", "is_url"]

#: Extras that provide the file system of a URL scheme.
SCHEME_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}


class StorageError(OSError):
    """A location cannot be served (missing library, credentials, bucket, permission)."""


def is_url(value: str | os.PathLike[str]) -> bool:
    """True if ``value`` is a URL with a scheme other than ``file://``."""
    text = os.fspath(value)
    return "://" in text and not text.startswith("file://")


def _normalise(value: str | os.PathLike[str]) -> str:
    text = os.fspath(value)
    if text.startswith("file://"):
        return str(Path(text[len("file://") :]))
    if "://" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme.lower()}://{rest.rstrip('/')}" if rest.rstrip("/") else f"{scheme.lower()}://"
    return str(Path(text).expanduser())


@dataclass(frozen=True)
class Location:
    """A local path or a URL, with the options of its file system (small, picklable).

    Parameters
    ----------
    url : str
        A local path (kept as given, ``~`` expanded) or ``scheme://...``.
    storage_options : mapping
        Keyword arguments of the fsspec file system (``key``, ``secret``,
        ``endpoint_url``, ``client_kwargs``, ...); ignored for local paths.
    """

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", _normalise(self.url))
        object.__setattr__(self, "storage_options", dict(self.storage_options or {}))

    # -- names --------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.url

    def __fspath__(self) -> str:
        if not self.is_local:
            raise TypeError(f"{self.url}: not a local path")
        return self.url

    @property
    def is_local(self) -> bool:
        """True for a path on this machine's file system."""
        return "://" not in self.url

    @property
    def scheme(self) -> str:
        """``file`` for local paths, else the URL's scheme."""
        return "file" if self.is_local else self.url.split("://", 1)[0]

    @property
    def name(self) -> str:
        """The last component."""
        return posixpath.basename(self.url.rstrip("/")) if not self.is_local else Path(self.url).name

    @property
    def parent(self) -> Location:
        """The location one level up."""
        if self.is_local:
            return Location(str(Path(self.url).parent))
        scheme, rest = self.url.split("://", 1)
        head = posixpath.dirname(rest.rstrip("/"))
        return Location(f"{scheme}://{head}", self.storage_options)

    def join(self, *parts: str) -> Location:
        """A location below this one."""
        if self.is_local:
            return Location(str(Path(self.url, *parts)))
        return Location("/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts)]), self.storage_options)

    def sibling(self, name: str) -> Location:
        """A location beside this one."""
        return self.parent.join(name)

    # -- file system ----------------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec file system (instances are cached by fsspec)."""
        return _filesystem(self.scheme, json.dumps(self.storage_options, sort_keys=True, default=str))

    @property
    def path(self) -> str:
        """The path inside :attr:`fs`."""
        if self.is_local:
            return os.path.abspath(self.url)
        return self.fs._strip_protocol(self.url)

    def exists(self) -> bool:
        """True if an object or a directory (prefix) is there."""
        if self.is_local:
            return os.path.exists(self.url)
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        """True if a file (object) is there."""
        if self.is_local:
            return os.path.isfile(self.url)
        try:
            return bool(self.fs.isfile(self.path))
        except FileNotFoundError:
            return False

    def read_bytes(self) -> bytes:
        """The whole content (one GET on an object store: with ``start=0`` s3fs does not ask the size first)."""
        if self.is_local:
            return Path(self.url).read_bytes()
        return bytes(self.fs.cat_file(self.path, start=0))

    def read_text(self) -> str:
        """The whole content as UTF-8 text."""
        return self.read_bytes().decode()

    def read_json(self) -> Any:
        """The content parsed as JSON."""
        return json.loads(self.read_bytes())

    def write_bytes(self, data: bytes | memoryview) -> Location:
        """Write the whole content at once; a reader sees the old content, none, or all of it."""
        if self.is_local:
            path = Path(self.url)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise
        else:
            self.fs.pipe_file(self.path, bytes(data))
        return self

    def write_json(self, doc: Any) -> Location:
        """Write ``doc`` as JSON (see :meth:`write_bytes`)."""
        return self.write_bytes(json.dumps(doc, default=str).encode())

    def write_with(self, write: Callable[[Path], object]) -> Location:
        """Let ``write(tmp)`` make a local file, then put it here whole.

        For writers that need a file name (FITS, ASDF). Locally the temporary
        file sits beside the target and is renamed into place; elsewhere it is
        uploaded in one request and removed.
        """
        if self.is_local:
            path = Path(self.url)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmpdir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
        else:
            tmpdir = Path(tempfile.mkdtemp(prefix="dask-resample-"))
        try:
            tmp = tmpdir / self.name
            write(tmp)
            if self.is_local:
                os.replace(tmp, self.url)
            else:
                self.fs.put_file(str(tmp), self.path)
        finally:
            _rmtree_local(tmpdir)
        return self

    def open(self, mode: str = "rb", **kwargs: Any) -> Any:
        """A file object (seekable; reads by range on object stores)."""
        if self.is_local:
            return open(self.url, mode)
        return self.fs.open(self.path, mode, **kwargs)

    def listdir(self) -> list[str]:
        """Names directly below (empty if nothing is there)."""
        if self.is_local:
            try:
                return sorted(os.listdir(self.url))
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(self.path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        own = self.path.rstrip("/")
        return sorted(posixpath.basename(str(e).rstrip("/")) for e in entries if str(e).rstrip("/") != own)

    def walk_files(self) -> Iterator[Location]:
        """Every file below."""
        if self.is_local:
            for dirpath, _dirs, files in os.walk(self.url):
                for fn in files:
                    yield Location(os.path.join(dirpath, fn))
            return
        try:
            found = self.fs.find(self.path)
        except FileNotFoundError:
            return
        scheme = self.scheme
        for p in found:
            yield Location(f"{scheme}://{p}", self.storage_options)

    def remove(self) -> None:
        """Remove what is here (a file or everything below), if anything."""
        if self.is_local:
            if os.path.isdir(self.url) and not os.path.islink(self.url):
                _rmtree_local(Path(self.url))
            else:
                _unlink(self.url)
            return
        fs = self.fs
        root = self.path.rstrip("/")
        fs.invalidate_cache()
        try:
            found = fs.find(root, withdirs=True)
        except FileNotFoundError:
            found = []
        try:
            fs.rm(root, recursive=True)
        except FileNotFoundError:
            pass
        if self.scheme in ("s3", "s3a"):
            _remove_folder_keys(fs, root, found)
        fs.invalidate_cache()

    def rename(self, target: Location) -> None:
        """Move a local directory or file (one rename); object stores have no rename."""
        if not (self.is_local and target.is_local):
            raise StorageError(f"{self.url}: rename needs a local file system")
        os.rename(self.url, target.url)

    # -- Zarr -----------------------------------------------------------------------------------
    def zarr_store(self, read_only: bool = False) -> Any:
        """The Zarr store of this location (``LocalStore`` or ``FsspecStore``)."""
        import zarr.storage

        if self.is_local:
            return zarr.storage.LocalStore(self.url, read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            self.url, storage_options=dict(self.storage_options), read_only=read_only
        )


def as_location(value: str | os.PathLike[str] | Location, storage_options: Mapping[str, Any] | None = None) -> Location:
    """``value`` as a :class:`Location`.

    ``storage_options`` apply to URLs, merged over ``resample.storage-options``
    of :mod:`dask.config` (the defaults of the user's Dask configuration).
    """
    if isinstance(value, Location):
        if storage_options and not value.storage_options:
            return Location(value.url, storage_options)
        return value
    text = os.fspath(value)
    if not is_url(text):
        return Location(text)
    import dask.config

    base = dask.config.get("resample.storage-options", None) or {}
    return Location(text, {**base, **(storage_options or {})})


_FILESYSTEMS: dict[tuple[str, str], Any] = {}


def _filesystem(scheme: str, options_json: str) -> Any:
    key = (scheme, options_json)
    if key not in _FILESYSTEMS:
        import fsspec

        options = json.loads(options_json)
        try:
            fs = fsspec.filesystem(scheme, **options)
        except ImportError as exc:
            raise StorageError(_missing_library(scheme, exc)) from None
        except ValueError as exc:
            if "Protocol not known" in str(exc):
                raise StorageError(f"{scheme}://: no file system is known for this scheme ({exc})") from None
            raise
        _FILESYSTEMS[key] = fs
    return _FILESYSTEMS[key]


def _missing_library(scheme: str, exc: BaseException) -> str:
    lib, extra = SCHEME_EXTRAS.get(scheme, (None, None))
    if lib:
        return f"{scheme}:// needs {lib}: pip install 'dask-resample[{extra}]' (or pip install {lib})"
    return f"{scheme}:// cannot be served: {exc}"


def check_output_location(location: Location, *, distributed: bool) -> None:
    """Check, before any cluster starts, that ``location`` can be written.

    A small probe object is written beside the output and removed, which
    proves the library, the credentials, the bucket and the permission.

    Raises
    ------
    StorageError
        One line naming the URL and the fix.
    """
    if location.is_local:
        return
    if distributed and location.scheme == "memory":
        raise StorageError(
            f"{location.url}: memory:// is private to each process; workers of a cluster cannot "
            "share it (use scheduler='serial', or a path or object-store URL)"
        )
    probe = location.sibling(f".{location.name}.probe-{uuid.uuid4().hex[:12]}")
    try:
        _check_bucket(location)
        probe.write_bytes(b"")
        probe.remove()
    except StorageError as exc:
        raise StorageError(str(exc) if str(exc).startswith(location.url) else f"{location.url}: {exc}") from None
    except Exception as exc:  # the file system's own errors: credentials, bucket, network
        raise StorageError(
            f"{location.url}: cannot write there ({_describe(exc)}); check the URL, the bucket "
            "and storage_options (credentials, endpoint_url)"
        ) from None


def _check_bucket(location: Location) -> None:
    """Refuse a bucket (container) that does not exist: some servers would create it on the first write."""
    if location.scheme not in SCHEME_EXTRAS:
        return
    bucket = location.path.split("/", 1)[0]
    fs = location.fs
    try:
        if location.scheme in ("s3", "s3a"):
            fs.call_s3("head_bucket", Bucket=bucket)
            return
        exists = fs.exists(bucket)
    except FileNotFoundError:
        exists = False
    if not exists:
        raise StorageError(f"{location.url}: no such bucket {bucket!r}; create it first or check the URL")


def _remove_folder_keys(fs: Any, root: str, objects: list[str]) -> None:
    """Delete the folder entries (``prefix/``) left under ``root`` after its objects are gone.

    Plain S3 has no folders and answers 204; servers backed by a file system
    (SeaweedFS, MinIO) keep empty folders listed until their key is deleted.
    """
    folders = {root}
    for obj in objects:
        parent = obj.rstrip("/")
        while len(parent) > len(root) and parent.startswith(root + "/"):
            folders.add(parent)
            parent = posixpath.dirname(parent)
    bucket = root.split("/", 1)[0]
    for folder in sorted(folders, key=len, reverse=True):
        key = folder.split("/", 1)[1] if "/" in folder else ""
        if key:
            try:
                fs.call_s3("delete_object", Bucket=bucket, Key=key + "/")
            except (FileNotFoundError, PermissionError, OSError):
                pass


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rmtree_local(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
