"""Export a Zarr mosaic to a FITS ``*_i2d.fits`` file.

With the ``jwst`` extra installed the file is written by
:class:`stdatamodels.jwst.datamodels.ImageModel`, so that
``stdatamodels.jwst.datamodels.open`` (and the rest of the JWST pipeline) reads
it back as an ``ImageModel`` with ``SCI``, ``WHT``, ``CON``, ``ERR``, ``VAR_*``
extensions, the gwcs of the mosaic and its resample metadata. Without it, a
plain multi-extension FITS file with the same extension names and the FITS WCS
cards of the mosaic is written.

The whole mosaic is loaded into memory (FITS images are not chunked): this is
meant for mosaics that fit in memory; bigger ones stay in Zarr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..store import (
    Location,
    as_location,
    gwcs_from_attrs,
    is_mosaic,
    open_mosaic,
    read_metadata,
    tiles_done,
)

__all__ = ["EXTENSION_NAMES", "export_fits", "write_plain_fits"]

log = logging.getLogger(__name__)

#: FITS extension name of each mosaic array.
EXTENSION_NAMES: dict[str, str] = {
    "data": "SCI",
    "wht": "WHT",
    "con": "CON",
    "err": "ERR",
    "var_rnoise": "VAR_RNOISE",
    "var_poisson": "VAR_POISSON",
    "var_flat": "VAR_FLAT",
    "dq": "DQ",
    "exptime": "EXPTIME",
}

_BUNIT = "MJy/sr"


def _has_stdatamodels() -> bool:
    try:
        import stdatamodels.jwst.datamodels  # noqa: F401
    except ImportError:
        return False
    return True


def export_fits(
    path: str | os.PathLike | Location,
    out: str | os.PathLike | Location,
    group: str | None = None,
    *,
    fmt: str = "auto",
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write a mosaic (or one group of a many-to-many mosaic) to a FITS file.

    Parameters
    ----------
    path : path-like, URL or Location
        The Zarr mosaic (a local path or any fsspec URL).
    out : path-like, URL or Location
        FITS file to write (conventionally ``*_i2d.fits``); on an object store
        it is made in a local temporary file and uploaded whole.
    group : str, optional
        Exposure group to export from a many-to-many mosaic.
    fmt : {"auto", "jwst", "fits"}
        ``"jwst"`` writes an ``ImageModel`` with ``stdatamodels``; ``"fits"``
        writes plain FITS; ``"auto"`` picks ``"jwst"`` when ``stdatamodels`` is
        importable.
    overwrite : bool
        Replace ``out`` if it exists.
    storage_options : mapping, optional
        Options of the URLs' file system (credentials, ``endpoint_url``).

    Returns
    -------
    Path or str
        ``out`` (its URL when it is not a local path).

    Raises
    ------
    ValueError
        If ``path`` is not a mosaic, ``group`` is missing or unknown, or ``fmt``
        is not recognised.
    FileExistsError
        If ``out`` exists and ``overwrite`` is false.
    """
    path = as_location(path, storage_options)
    target = as_location(out, storage_options)
    if fmt not in ("auto", "jwst", "fits"):
        raise ValueError(f"fmt: expected 'auto', 'jwst' or 'fits', got {fmt!r}")
    if not is_mosaic(path):
        raise ValueError(f"{path}: not a dask-resample mosaic")
    root = read_metadata(path)
    if root.get("mode") == "many_to_many":
        groups = list(root.get("groups") or [])
        if not group:
            raise ValueError(f"{path}: many-to-many mosaic; choose a group (--group) among {groups}")
        if group not in groups:
            raise ValueError(f"group: {group!r} is not a group of {path}; expected one of {groups}")
    elif group:
        raise ValueError(f"group: {path} is a many-to-one mosaic without groups")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True (--overwrite) to replace it")
    if os.path.splitext(target.name)[1].lower() not in (".fits", ".fit", ".fts"):
        raise ValueError(f"{target}: the output file name must end in .fits")

    meta = read_metadata(path, group)
    _warn_if_incomplete(path, group or "", meta)
    ds = open_mosaic(path, group=group)
    arrays = {name: np.asarray(ds[name].values) for name in EXTENSION_NAMES if name in ds.data_vars}
    if fmt == "auto":
        fmt = "jwst" if _has_stdatamodels() else "fits"
    writer = _write_image_model if fmt == "jwst" else write_plain_fits
    if target.is_local:
        local = Path(target.url)
        local.parent.mkdir(parents=True, exist_ok=True)
        if local.exists():
            local.unlink()
        writer(local, arrays, meta)
        log.info("Wrote %s", local)
        return local
    target.write_with(lambda tmp: writer(tmp, arrays, meta))
    log.info("Wrote %s", target)
    return target.url


def _warn_if_incomplete(path: Location, group: str, meta: Mapping[str, Any]) -> None:
    planned = (meta.get("n_tiles_planned") or {}).get(group)
    if planned is None:
        return
    done = len(tiles_done(path, group))
    if done < planned:
        log.warning("%s: only %d of %d tiles are written; unwritten tiles hold the fill value", path, done, planned)


def _s_region(wcs: Any) -> str | None:
    try:
        from stcal.alignment.util import compute_s_region_keyword

        return compute_s_region_keyword(wcs.footprint())
    except Exception:  # pragma: no cover - a WCS without a footprint
        return None


def _write_image_model(out: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` and metadata as an ``ImageModel`` (``*_i2d`` layout)."""
    from stdatamodels.jwst import datamodels

    params = meta.get("params", {})
    grid = meta.get("grid", {})
    totals = meta.get("totals", {})
    cards = meta.get("wcs_fits", {})
    wcs = gwcs_from_attrs(meta)

    model = datamodels.ImageModel()
    model.data = arrays["data"]
    model.wht = arrays["wht"]
    if "con" in arrays:
        model.con = arrays["con"]
    if "err" in arrays:
        model.err = arrays["err"]
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        if name in arrays:
            setattr(model, name, arrays[name])
    if "dq" in arrays:
        model.dq = arrays["dq"]

    model.meta.filename = out.name
    model.meta.telescope = "JWST"
    model.meta.bunit_data = _BUNIT
    if "err" in arrays:
        model.meta.bunit_err = _BUNIT
    model.meta.wcs = wcs
    _set_wcsinfo(model, cards)
    if (s_region := _s_region(wcs)) is not None:
        model.meta.wcsinfo.s_region = s_region

    if grid.get("pixelarea_steradians") is not None:
        model.meta.photometry.pixelarea_steradians = float(grid["pixelarea_steradians"])
    if grid.get("pixelarea_arcsecsq") is not None:
        model.meta.photometry.pixelarea_arcsecsq = float(grid["pixelarea_arcsecsq"])

    res = model.meta.resample
    res.pointings = int(totals.get("pointings") or 0)
    if grid.get("pixel_scale_ratio") is not None:
        res.pixel_scale_ratio = float(grid["pixel_scale_ratio"])
    res.pixfrac = float(params.get("pixfrac", 1.0))
    res.kernel = str(params.get("kernel", "square"))
    res.fillval = str(params.get("fillval", "NAN"))
    res.weight_type = str(params.get("weight_type", "ivm"))

    exp = model.meta.exposure
    for key in ("exposure_time", "start_time", "end_time", "duration", "measurement_time"):
        if totals.get(key) is not None:
            setattr(exp, key, float(totals[key]))
    if totals.get("exposure_time") is not None:
        exp.effective_exposure_time = float(totals["exposure_time"])
    if totals.get("elapsed_exposure_time") is not None:
        exp.elapsed_exposure_time = float(totals["elapsed_exposure_time"])
    model.meta.cal_step.resample = "COMPLETE"
    model.save(str(out))
    model.close()


_WCSINFO_KEYS = (
    "CRPIX1",
    "CRPIX2",
    "CRVAL1",
    "CRVAL2",
    "CDELT1",
    "CDELT2",
    "CTYPE1",
    "CTYPE2",
    "CUNIT1",
    "CUNIT2",
    "PC1_1",
    "PC1_2",
    "PC2_1",
    "PC2_2",
    "RADESYS",
)


def _set_wcsinfo(model: Any, cards: Mapping[str, Any]) -> None:
    """Copy the linear FITS WCS cards of the mosaic into ``meta.wcsinfo``."""
    for key in _WCSINFO_KEYS:
        if key in cards:
            value = cards[key]
            setattr(model.meta.wcsinfo, key.lower(), value if isinstance(value, str) else float(value))


def _header_cards(meta: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """Primary-header cards describing the resampling (plain FITS output)."""
    params = meta.get("params", {})
    grid = meta.get("grid", {})
    totals = meta.get("totals", {})
    cards: list[tuple[str, Any, str]] = [
        ("ORIGIN", str(meta.get("software", "dask-resample"))[:60], "software that made the mosaic"),
        ("RESMODE", str(meta.get("mode", "many_to_one")), "resample mode"),
        ("NINPUTS", len([r for r in meta.get("inputs", []) if not r.get("skipped")]), "inputs drizzled"),
        ("NPOINTS", int(totals.get("pointings") or 0), "number of pointings (exposure groups)"),
        ("PIXFRAC", float(params.get("pixfrac", 1.0)), "drizzle pixfrac"),
        ("KERNEL", str(params.get("kernel", "square")), "drizzle kernel"),
        ("FILLVAL", str(params.get("fillval", "NAN")), "value of pixels without input"),
        ("WGTTYPE", str(params.get("weight_type", "ivm")), "input weighting"),
        ("GOODBITS", str(params.get("good_bits", 0)), "DQ flags considered good"),
    ]
    if grid.get("pixel_scale_ratio") is not None:
        cards.append(("PXSCLRT", float(grid["pixel_scale_ratio"]), "output/input pixel scale ratio"))
    if grid.get("pixel_scale") is not None:
        cards.append(("PIXSCALE", float(grid["pixel_scale"]), "[arcsec] output pixel scale"))
    for key, card, comment in (
        ("exposure_time", "XPOSURE", "[s] total exposure time"),
        ("measurement_time", "TMEASURE", "[s] total measurement time"),
        ("start_time", "EXPSTART", "[MJD] first exposure start"),
        ("end_time", "EXPEND", "[MJD] last exposure end"),
        ("duration", "DURATION", "[s] total duration"),
    ):
        if totals.get(key) is not None:
            cards.append((card, float(totals[key]), comment))
    if "subgrid" in meta:  # a cutout or pyramid level
        cards.append(("SUBSCALE", float(meta["subgrid"]["scale"]), "pixel size in mosaic pixels"))
        cards.append(("SUBORIGY", float(meta["subgrid"]["origin_yx"][0]), "origin y in mosaic pixels"))
        cards.append(("SUBORIGX", float(meta["subgrid"]["origin_yx"][1]), "origin x in mosaic pixels"))
    return cards


def write_plain_fits(
    out: str | os.PathLike, arrays: Mapping[str, np.ndarray | Callable[[], np.ndarray]], meta: Mapping[str, Any]
) -> Path:
    """Write a primary HDU plus one named image HDU per array, with the mosaic's FITS WCS.

    The arrays are appended one at a time (a callable is called only when its
    extension is written), so memory holds one array, not the whole product;
    the file appears under its name only when complete.

    Parameters
    ----------
    out : path-like
        FITS file to write (replaced if it exists).
    arrays : mapping
        Mosaic array name (``"data"``, ``"wht"``, ...) -> array, or a callable
        returning it; written in the order of :data:`EXTENSION_NAMES`.
    meta : mapping
        Mosaic metadata (``attrs["dask_resample"]``).

    Returns
    -------
    Path
    """
    from astropy.io import fits

    out = Path(out)
    grid = meta.get("grid", {})
    primary = fits.PrimaryHDU()
    for key, value, comment in _header_cards(meta):
        primary.header[key] = (value, comment)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        tmp.unlink()
    primary.writeto(tmp)
    wcs_cards = {k: v for k, v in meta.get("wcs_fits", {}).items() if k not in ("NAXIS1", "NAXIS2", "WCSAXES")}
    for name, ext in EXTENSION_NAMES.items():
        if name not in arrays:
            continue
        data = arrays[name]
        hdu = fits.ImageHDU(np.asarray(data() if callable(data) else data), name=ext)
        if name == "con":
            hdu.header["WCSAXES"] = (2, "celestial WCS of the (x, y) axes of every plane")
        for key, value in wcs_cards.items():
            hdu.header[key] = value
        if name in ("data", "err"):
            hdu.header["BUNIT"] = _BUNIT
        elif name.startswith("var_"):
            hdu.header["BUNIT"] = "(MJy/sr)**2"
        if name == "data":
            if grid.get("pixelarea_steradians") is not None:
                hdu.header["PIXAR_SR"] = (float(grid["pixelarea_steradians"]), "nominal pixel area in sr")
            if grid.get("pixelarea_arcsecsq") is not None:
                hdu.header["PIXAR_A2"] = (float(grid["pixelarea_arcsecsq"]), "nominal pixel area in arcsec^2")
        fits.append(tmp, hdu.data, hdu.header)
    os.replace(tmp, out)
    return out
