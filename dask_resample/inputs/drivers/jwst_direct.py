"""The stcal model dictionary of a JWST ``ImageModel`` file, read straight from its HDUs.

Building a datamodel costs about 0.2 s per file whatever its size (schema
validation of the whole ASDF tree, the FITS keyword update, the datamodel's own
machinery): for 128 x 128 exposures that is two thirds of a drizzle task. Where
the datamodel would take its metadata from the ASDF tree unchanged, this module
reads exactly what :func:`jwst.resample.resample.input_jwst_model_to_dict` takes
from the model, from the same places, without building one:

* the metadata and the gwcs: the ``ASDF`` extension's tree, as stdatamodels
  reads it when the file's headers are those it was saved with (its
  ``_fits_hash`` equals :func:`stdatamodels.fits_support.fits_hash` of the
  headers; the datamodel then skips its FITS update, ``_can_skip_fits_update``);
* the arrays: the HDUs the tree's arrays point to (``fits:SCI,1``, ...), cast
  to the ``ImageModel`` schema's dtypes, as the datamodel casts them.

Anything else (another datamodel type, edited headers, an array absent from the
file, which the datamodel would fill with its default) returns ``None`` and the
caller builds the datamodel. ``tests/test_jwst_direct.py`` checks the two agree
key by key, bit for bit.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import numpy as np

__all__ = ["ARRAY_DTYPES", "read_model_dict"]

#: ``ImageModel`` arrays read for stcal, with the dtypes of the datamodel's schema.
ARRAY_DTYPES: dict[str, np.dtype] = {
    "data": np.dtype(np.float32),
    "dq": np.dtype(np.uint32),
    "err": np.dtype(np.float32),
    "var_rnoise": np.dtype(np.float32),
    "var_flat": np.dtype(np.float32),
    "var_poisson": np.dtype(np.float32),
}

#: Metadata of the stcal dictionary: key -> path in the tree's ``meta``.
META_PATHS: dict[str, tuple[str, ...]] = {
    "bunit_data": ("bunit_data",),
    "exposure_time": ("exposure", "exposure_time"),
    "start_time": ("exposure", "start_time"),
    "end_time": ("exposure", "end_time"),
    "duration": ("exposure", "duration"),
    "measurement_time": ("exposure", "measurement_time"),
    "pixelarea_steradians": ("photometry", "pixelarea_steradians"),
    "pixelarea_arcsecsq": ("photometry", "pixelarea_arcsecsq"),
    "level": ("background", "level"),
    "subtracted": ("background", "subtracted"),
    "instrument_name": ("instrument", "name"),
    "exposure_type": ("exposure", "type"),
}

_FITS_SOURCE = re.compile(r"fits:(?:(?P<name>[ -~]+),)?(?P<ver>[0-9]+)$")


def _meta_value(meta: Any, path: tuple[str, ...]) -> Any:
    node = meta
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _hdu_of(node: Any) -> tuple[str, int] | int | None:
    """The HDU a tree array points to (``fits:SCI,1`` -> ``("SCI", 1)``), else ``None``."""
    source = getattr(node, "_source", None)
    if not isinstance(source, str) or not (m := _FITS_SOURCE.match(source)):
        return None
    ver = int(m.group("ver"))
    return (m.group("name"), ver) if m.group("name") else ver


def read_model_dict(hdul: Any, filename: str, arrays: tuple[str, ...]) -> dict[str, Any] | None:
    """stcal's model dictionary of an open ``ImageModel`` file, or ``None`` where a datamodel is needed.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        The open file (arrays are read from it here).
    filename : str
        ``meta.filename``, as the datamodel has it once opened (the file's name).
    arrays : tuple of str
        The arrays to read (keys of :data:`ARRAY_DTYPES`).

    Returns
    -------
    dict or None
        ``data``, ``dq``, ``wcs``, the metadata of :data:`META_PATHS`, ``filename``
        and the ``arrays`` asked for; ``None`` when the datamodel could differ.
    """
    import asdf
    from stdatamodels import fits_support

    if str(hdul[0].header.get("DATAMODL", "")) != "ImageModel":
        return None
    try:
        raw = hdul["ASDF"].data.tobytes()
    except (KeyError, IndexError, AttributeError):
        return None
    _ = asdf.get_config().extensions  # loaded once per process: the context's copy of the config shares them
    with warnings.catch_warnings(), asdf.config_context() as cfg:
        warnings.simplefilter("ignore")
        cfg.validate_on_read = False  # the tree is the one stdatamodels wrote and validated
        tree = asdf.open(io.BytesIO(raw), memmap=False, lazy_load=True).tree
        if tree.get("_fits_hash") is None or tree["_fits_hash"] != fits_support.fits_hash(hdul):
            return None  # edited headers: the datamodel updates its tree from them
    meta = tree.get("meta")
    if not isinstance(meta, dict) or meta.get("wcs") is None:
        return None
    out: dict[str, Any] = {"filename": filename, "wcs": meta["wcs"], "wcsinfo": None}
    out.update({key: _meta_value(meta, path) for key, path in META_PATHS.items()})
    shape = None
    for name in ("data", "dq", *arrays):
        if name in out:
            continue
        hdu = _hdu_of(tree.get(name))
        if hdu is None:
            return None  # absent (the datamodel would make a default array) or stored in the tree
        data = hdul[hdu].data
        if data is None or data.ndim != 2 or (shape is not None and data.shape != shape):
            return None
        shape = data.shape
        out[name] = np.asarray(data, dtype=ARRAY_DTYPES[name])  # native byte order, as the datamodel casts
    return out
