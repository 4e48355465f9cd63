"""What outlier detection writes: ``*_crf.fits`` files (Roman: ``*_outlier_detection.asdf``), blot images, names.

Every file is written whole (a temporary file renamed into place on a disk,
one upload on an object store), so a path is either absent or complete; an
existing file is replaced only with ``overwrite``. Output directories may be
local paths or URLs (:class:`~dask_resample.store.location.Location`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..inputs._files import write_atomic
from ..inputs.drivers import driver_for
from ..inputs.records import ExposureRef, InputError, InputSource
from ..store.location import Location, as_location

__all__ = [
    "CRF_SUFFIX",
    "KNOWN_SUFFIXES",
    "OUTPUT_EXTENSIONS",
    "output_name",
    "planned_outputs",
    "write_blot",
    "write_crf",
]

#: Suffix of the step's output files.
CRF_SUFFIX = "crf"

#: Pipeline suffixes replaced by the output suffix (``jw..._cal.fits`` -> ``jw..._crf.fits``).
KNOWN_SUFFIXES: tuple[str, ...] = (
    "cal",
    "crf",
    "rate",
    "rateints",
    "calints",
    "i2d",
    "bsub",
    "skysub",
    "flat",
    "outlier_detection",
)

#: Input kind -> extension of its flagged file (the input's own format; FITS unless listed).
OUTPUT_EXTENSIONS: dict[str, str] = {"roman": ".asdf"}


def output_name(filename: str, suffix: str = CRF_SUFFIX, ext: str = ".fits") -> str:
    """``<root>_<suffix><ext>`` for an input file name, the root without a known pipeline suffix."""
    stem = Path(filename).name
    stem = re.sub(r"\.fits(\.gz)?$", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", stem) if "." in stem else stem
    m = re.match(rf"^(.*)_({'|'.join(KNOWN_SUFFIXES)})$", stem)
    root = m.group(1) if m else stem
    return f"{root}_{suffix}{ext}"


def planned_outputs(
    refs: Sequence[InputSource | ExposureRef], output_dir: Location, *, overwrite: bool, suffix: str = CRF_SUFFIX
) -> list[Location]:
    """Paths of the flagged files (``<root>_<suffix>`` in each input's format), checked before any work.

    Raises
    ------
    InputError
        Two inputs would write the same file, or a file exists and ``overwrite`` is false.
    """
    paths = [output_dir.join(output_name(r.filename, suffix, OUTPUT_EXTENSIONS.get(r.kind, ".fits"))) for r in refs]
    sources = {real_path(r.path if hasattr(r, "path") else r.source) for r in refs}
    seen: dict[Location, str] = {}
    for r, p in zip(refs, paths, strict=True):
        if real_path(p.url) in sources:
            raise InputError(f"{p}: is an input; choose another output directory")
        if p in seen:
            raise InputError(f"{r.filename}: would write {p.name}, as {seen[p]} does; give inputs distinct names")
        seen[p] = r.filename
        if p.exists() and not overwrite:
            raise InputError(f"{p}: exists; pass overwrite=True (--overwrite) to replace it")
    return paths


def real_path(path: str) -> str:
    """A local path resolved (links, ``..``); a URL as it is."""
    return path if "://" in path else os.path.realpath(path)


def _atomic(path: Location, write: Any, overwrite: bool) -> str:
    """:func:`dask_resample.inputs._files.write_atomic`, refusing an existing file unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")
    return write_atomic(path, write)


def write_crf(
    ref: ExposureRef,
    mask: np.ndarray | None,
    path: str | os.PathLike | Location,
    *,
    status: str,
    overwrite: bool = False,
) -> str:
    """Write one input with its outliers flagged (``mask`` ``None``: unchanged, e.g. a skipped step)."""
    driver = driver_for(ref.kind)
    return _atomic(as_location(path), lambda tmp: driver.write_flagged(ref, mask, tmp, status=status), overwrite)


def write_blot(
    ref: ExposureRef, blot: np.ndarray, path: str | os.PathLike | Location, *, overwrite: bool = False
) -> str:
    """Write the median blotted onto one input as a FITS image (``*_blot.fits``)."""
    from astropy.io import fits

    def write(tmp: Path) -> None:
        primary = fits.PrimaryHDU()
        primary.header["FILENAME"] = as_location(path).name
        primary.header["INPUT"] = (ref.filename, "blotted onto")
        fits.HDUList([primary, fits.ImageHDU(np.asarray(blot, np.float32), name="SCI")]).writeto(tmp)

    return _atomic(as_location(path), write, overwrite)
