"""Choosing the output grid: from the inputs and ``wcs_pars``, or from a given WCS.

The output WCS is computed by the very functions the reference uses
(``stcal.alignment.util.wcs_from_sregions``, ``compute_scale`` and
``compute_mean_pixel_area``, following
``jwst.resample.resample_utils.resampled_wcs_from_models``), so the grid is
identical to the one ``ResampleImage`` builds.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..inputs.io import ExposureRef, InputError, load_wcs, one_line
from ..params import check_wcs_pars
from .grids import OutputGrid, s_region_from_wcs, split_sregions

__all__ = ["OutputWCSError", "load_output_wcs", "make_output_grid"]


def _s_regions(refs: Sequence[ExposureRef]) -> list[str]:
    """``S_REGION`` polygons of the inputs (from their metadata, else from their WCS)."""
    regions: list[str] = []
    for ref in refs:
        if ref.s_region:
            regions.extend(split_sregions(ref.s_region))
            continue
        wcs, shape, _ = load_wcs(ref)
        regions.append(s_region_from_wcs(wcs, shape))
    return regions


def make_output_grid(
    refs: Sequence[ExposureRef],
    *,
    output_wcs: Mapping[str, Any] | None = None,
    wcs_pars: Mapping[str, Any] | None = None,
) -> OutputGrid:
    """Compute the output grid from the inputs, as ``ResampleImage`` does.

    Parameters
    ----------
    refs : sequence of ExposureRef
        The inputs, in input order; the first one is the reference exposure.
    output_wcs : dict, optional
        ``{"wcs": gwcs, "pixel_scale": arcsec (optional), "pixel_scale_ratio": (optional)}``.
        Takes precedence over ``wcs_pars``.
    wcs_pars : dict, optional
        Keys ``pixel_scale_ratio``, ``pixel_scale`` (arcsec), ``output_shape`` (ny, nx),
        ``rotation``, ``crpix``, ``crval``.

    Returns
    -------
    OutputGrid

    Raises
    ------
    KeyError
        For unknown ``wcs_pars`` keys (the message names them).
    """
    from stcal.alignment.util import compute_scale, wcs_from_sregions
    from stcal.resample.utils import compute_mean_pixel_area

    wcs_pars = check_wcs_pars(wcs_pars)
    if not refs:
        raise InputError("inputs: no exposures given")

    if output_wcs is not None:
        if "wcs" not in output_wcs:
            raise KeyError("output_wcs: expected a dict with key 'wcs' (and optionally 'pixel_scale')")
        wcs = output_wcs["wcs"]
        if getattr(wcs, "array_shape", None) is None:
            raise ValueError("output_wcs: custom WCS objects must have 'array_shape' set")
        pixel_scale = output_wcs.get("pixel_scale")
        if pixel_scale is None:
            pixel_scale = 3600.0 * np.rad2deg(math.sqrt(compute_mean_pixel_area(wcs)))
        psr = output_wcs.get("pixel_scale_ratio")
        if psr is None:
            ref_wcs, shape, info = load_wcs(refs[0])
            area = info.get("pixelarea_steradians")
            if area is None or area <= 0:
                area = compute_mean_pixel_area(ref_wcs, shape=shape)
            psr = float(pixel_scale) / (3600.0 * np.rad2deg(math.sqrt(area)))
        ny, nx = (int(n) for n in wcs.array_shape)
        return OutputGrid(wcs, (ny, nx), float(pixel_scale), float(psr))

    ref_wcs, shape, ref_wcsinfo = load_wcs(refs[0])
    ref_wcs = copy.deepcopy(ref_wcs)
    regions = _s_regions(refs)
    pixel_scale_ratio = wcs_pars.get("pixel_scale_ratio", 1.0)
    pscale = wcs_pars.get("pixel_scale")
    if pscale is not None:
        pscale = float(pscale) / 3600.0
    if pscale is None:
        pscale_in0 = compute_scale(ref_wcs, fiducial=np.array([ref_wcsinfo["ra_ref"], ref_wcsinfo["dec_ref"]]))
        pscale = pscale_in0 * pixel_scale_ratio
    else:
        pscale_in0 = np.rad2deg(math.sqrt(compute_mean_pixel_area(ref_wcs, shape=shape)))
        pixel_scale_ratio = pscale / pscale_in0
    output_shape = wcs_pars.get("output_shape")
    wcs = wcs_from_sregions(
        regions,
        ref_wcs=ref_wcs,
        ref_wcsinfo=ref_wcsinfo,
        pscale_ratio=pixel_scale_ratio,
        pscale=pscale,
        rotation=wcs_pars.get("rotation"),
        shape=None if output_shape is None else tuple(output_shape),
        crpix=wcs_pars.get("crpix"),
        crval=wcs_pars.get("crval"),
    )
    ny, nx = (int(n) for n in wcs.array_shape)
    return OutputGrid(wcs, (ny, nx), float(3600.0 * pscale), float(pixel_scale_ratio))


class OutputWCSError(ValueError):
    """An output WCS file that cannot be used; the message names the file."""


def load_output_wcs(path: str | os.PathLike, output_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """Read an output WCS from an ASDF file (``{"wcs": gwcs, ...}``), as jwst's ``output_wcs``.

    Parameters
    ----------
    path : path-like
        ASDF file with the gwcs under ``"wcs"`` (optionally ``pixel_scale`` in
        arcsec, ``pixel_area``, ``array_shape``).
    output_shape : (int, int), optional
        Output shape (ny, nx), overriding the one of the WCS.

    Returns
    -------
    dict
        ``{"wcs": gwcs, "pixel_scale": float or None}``, the ``output_wcs``
        argument of :func:`dask_resample.resample`.

    Raises
    ------
    OutputWCSError
        If the file is missing, unreadable, holds no gwcs or no array shape.
    """
    path = Path(path)
    if not path.is_file():
        raise OutputWCSError(f"{path}: output WCS file not found")
    shape_xy = None if output_shape is None else (int(output_shape[1]), int(output_shape[0]))
    try:
        try:
            from jwst.resample.resample_utils import load_custom_wcs
        except ImportError:
            load_custom_wcs = None
        if load_custom_wcs is not None:
            out = dict(load_custom_wcs(str(path), shape_xy))
        else:
            import asdf

            with asdf.open(str(path), lazy_load=False, memmap=False) as af:
                wcs = af.tree["wcs"]
                scale = af.tree.get("pixel_scale")
            if output_shape is not None:
                wcs.array_shape = tuple(int(n) for n in output_shape)
            out = {"wcs": wcs, "pixel_scale": scale}
    except Exception as exc:
        raise OutputWCSError(f"{path}: cannot read an output WCS ({one_line(exc)})") from None
    wcs = out.get("wcs")
    if wcs is None or not hasattr(wcs, "forward_transform"):
        raise OutputWCSError(f"{path}: the 'wcs' entry is not a gwcs")
    if getattr(wcs, "array_shape", None) is None:
        raise OutputWCSError(f"{path}: the output WCS has no array shape; pass --output-shape NY NX")
    return {"wcs": wcs, "pixel_scale": out.get("pixel_scale")}
