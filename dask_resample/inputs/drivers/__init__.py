"""Input drivers: one module per input format, behind one small protocol.

A driver knows one kind of input (JWST datamodel files, Roman WFI ASDF files,
plain FITS images, exposures held in memory). Everything format-specific lives in its module:

* ``describe(source)`` reads the small metadata of one input (exposure times,
  group id, outline on the sky, pixel area) into an
  :class:`~dask_resample.inputs.io.ExposureRef`; it runs on a worker when there is a
  cluster, and also checks the file's integrity, so that a damaged file fails
  before any heavy work with a message naming it;
* ``load_wcs(ref)`` returns the WCS (gwcs or gwcs-like), the array shape and
  the ``wcsinfo`` the output grid needs;
* ``load_arrays(ref, need_var=..., need_err=...)`` returns the model dictionary
  that ``stcal.resample`` expects;
* ``write_flagged(ref, mask, path, status=..., storage_options=None)`` writes the
  input with outliers flagged, in its own format (the ``*_crf.fits`` file of
  outlier detection), at a local path or a URL (uploaded whole).

Files are local paths or URLs of any fsspec file system (``s3://``, ``gs://``,
``memory://``, ...): records carry the URL and its storage options
(``InputSource.location``, ``ExposureRef.location``), and the drivers read URLs
by range from the worker that runs the task, never through a local copy. Each
driver's module says what it fetches for metadata and for pixels.

Adding a format means adding a module here and one entry to :data:`DRIVERS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from ..records import ExposureRef, InputSource

__all__ = ["DRIVERS", "InputDriver", "driver_for"]


class InputDriver(Protocol):
    """What every input driver module provides."""

    def describe(self, source: InputSource) -> ExposureRef:
        """Read one input's metadata (a worker task)."""

    def load_wcs(self, ref: ExposureRef) -> tuple[Any, tuple[int, int], dict[str, Any]]:
        """Return ``(wcs, shape_yx, wcsinfo)``."""

    def load_arrays(self, ref: ExposureRef, *, need_var: bool, need_err: bool) -> dict[str, Any]:
        """Return the ``stcal.resample`` model dictionary."""

    def write_flagged(self, ref: ExposureRef, mask: Any, path: Any, *, status: str, storage_options: Any = None) -> str:
        """Write the input with outliers ``mask`` flagged (its ``*_crf.fits`` file); return the path or URL."""


#: Input kind -> module implementing :class:`InputDriver`.
DRIVERS: dict[str, str] = {
    "jwst": "dask_resample.inputs.drivers.jwst_model",
    "fits": "dask_resample.inputs.drivers.plain_fits",
    "memory": "dask_resample.inputs.drivers.in_memory",
    "roman": "dask_resample.inputs.drivers.roman_model",
}


def driver_for(kind: str) -> InputDriver:
    """The driver module of an input kind."""
    try:
        name = DRIVERS[kind]
    except KeyError:
        raise ValueError(f"unknown input kind {kind!r}; known: {', '.join(DRIVERS)}") from None
    return importlib.import_module(name)
