"""FITS file checks shared by the FITS-based drivers (cheap and full)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..records import InputError, one_line

__all__ = ["check_fits_file", "primary_header"]


def primary_header(path: Path) -> Any:
    """The primary header, read without touching the rest of the file (cheap client-side check).

    Raises
    ------
    InputError
        If the file is missing or does not start like a FITS file.
    """
    from astropy.io import fits

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


def check_fits_file(path: Path) -> list[str]:
    """Check that a FITS file is whole; return its HDU names (upper case).

    Raises
    ------
    InputError
        If the file is truncated, corrupt or unreadable (the message names it).
    """
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation warnings become the InputError below
            hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
        with hdul:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                names = [h.name.upper() for h in hdul]
                hdul.verify("exception")
                _check_fits_size(path, hdul)
            return names
    except InputError:
        raise
    except Exception as exc:  # astropy raises many kinds for corrupt files
        raise InputError(f"{path}: not a readable FITS file ({one_line(exc)})") from None


def _check_fits_size(path: Path, hdul: Any) -> None:
    """Raise :class:`InputError` if the HDUs do not exactly fill the file (truncated or corrupt)."""
    end = need = 0
    for k in range(len(hdul)):
        info = hdul.fileinfo(k)
        if info is None:
            continue
        end = max(end, int(info["datLoc"]) + int(info["datSpan"]))
        need = max(need, int(info["datLoc"]) + int(hdul[k].size))
    size = path.stat().st_size
    if size < need:
        raise InputError(f"{path}: truncated FITS file ({size} bytes, its headers describe {need})")
    if size > end:
        with open(path, "rb") as fh:
            fh.seek(end)
            tail = fh.read(2880)
        if tail.strip(b"\0 "):
            raise InputError(f"{path}: truncated or corrupt FITS file ({size - end} unreadable bytes after the last HDU)")
