"""What outlier detection writes: ``*_crf.fits`` files, blot images, names.

Every file is written into a hidden temporary directory beside its final path
and moved into place by one rename, so a path is either absent or complete; an
existing file is replaced only with ``overwrite``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._files import write_atomic
from ..drivers import driver_for
from ..records import ExposureRef, InputError

__all__ = ["CRF_SUFFIX", "KNOWN_SUFFIXES", "output_name", "planned_outputs", "write_blot", "write_crf"]

#: Suffix of the step's output files.
CRF_SUFFIX = "crf"

#: Pipeline suffixes replaced by the output suffix (``jw..._cal.fits`` -> ``jw..._crf.fits``).
KNOWN_SUFFIXES: tuple[str, ...] = ("cal", "crf", "rate", "rateints", "calints", "i2d", "bsub", "skysub", "flat")


def output_name(filename: str, suffix: str = CRF_SUFFIX) -> str:
    """``<root>_<suffix>.fits`` for an input file name, the root without a known pipeline suffix."""
    stem = Path(filename).name
    stem = re.sub(r"\.fits(\.gz)?$", "", stem, flags=re.IGNORECASE)
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", stem) if "." in stem else stem
    m = re.match(rf"^(.*)_({'|'.join(KNOWN_SUFFIXES)})$", stem)
    root = m.group(1) if m else stem
    return f"{root}_{suffix}.fits"


def planned_outputs(refs: Sequence[ExposureRef], output_dir: Path, *, overwrite: bool) -> list[Path]:
    """Paths of the ``*_crf.fits`` files, checked before any work.

    Raises
    ------
    InputError
        Two inputs would write the same file, or a file exists and ``overwrite`` is false.
    """
    paths = [output_dir / output_name(r.filename) for r in refs]
    sources = {os.path.realpath(r.path if hasattr(r, "path") else r.source) for r in refs}
    seen: dict[Path, str] = {}
    for r, p in zip(refs, paths, strict=True):
        if os.path.realpath(p) in sources:
            raise InputError(f"{p}: is an input; choose another output directory")
        if p in seen:
            raise InputError(f"{r.filename}: would write {p.name}, as {seen[p]} does; give inputs distinct names")
        seen[p] = r.filename
        if p.exists() and not overwrite:
            raise InputError(f"{p}: exists; pass overwrite=True (--overwrite) to replace it")
    return paths


def _atomic(path: Path, write: Any, overwrite: bool) -> str:
    """:func:`dask_resample._files.write_atomic`, refusing an existing file unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise InputError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it")
    return write_atomic(path, write)


def write_crf(ref: ExposureRef, mask: np.ndarray | None, path: str | os.PathLike, *, status: str,
              overwrite: bool = False) -> str:
    """Write one input with its outliers flagged (``mask`` ``None``: unchanged, e.g. a skipped step)."""
    driver = driver_for(ref.kind)
    return _atomic(Path(path), lambda tmp: driver.write_flagged(ref, mask, tmp, status=status), overwrite)


def write_blot(ref: ExposureRef, blot: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Write the median blotted onto one input as a FITS image (``*_blot.fits``)."""
    from astropy.io import fits

    def write(tmp: Path) -> None:
        primary = fits.PrimaryHDU()
        primary.header["FILENAME"] = Path(path).name
        primary.header["INPUT"] = (ref.filename, "blotted onto")
        fits.HDUList([primary, fits.ImageHDU(np.asarray(blot, np.float32), name="SCI")]).writeto(tmp)

    return _atomic(Path(path), write, overwrite)
