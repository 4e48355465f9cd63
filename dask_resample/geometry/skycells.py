"""Roman skycells: output grids cut from romancal's sky tessellation (``romancal.skycell``).

The sky is covered by about 4,000 projection regions (one tangent-plane grid
each), cut into skycells of 5000 x 5000 pixels at 0.055"/px with 100-pixel
borders. A skycell's grid is romancal's own WCS of it (``SkyCells.wcs``), so a
mosaic on it is the one romancal's ``resample_on_skycell`` makes; its tiles
start at the skycell's first pixel.

A projection region's grid (:func:`~dask_resample.geometry.projection_regions.projection_region_grid`,
:mod:`dask_resample.geometry.projection_regions`) is the region's tangent plane, its pixel
(0, 0) on a skycell's first pixel: romancal gives a skycell the WCS of its
region with the reference pixel moved by whole pixels, so each skycell's pixels
are the grid's pixels inside its box (:class:`SkycellBox`). The skycells of a
region sit ``nxy_skycell - 2 * skycell_border_pixels`` (4800) pixels apart; tiles
whose side divides that (``projection_regions.skycell_tile_shape``) put every skycell's first
pixel on a tile corner. The grid can span only some skycells (those the inputs
touch), as a whole region (about 245,000 pixels square) exceeds the default
``max_output_pixels``.

The tessellation is read from a skymap file (the ``skycells`` reference file):
the path given here, else the ``SKYMAP_PATH`` environment variable, as romancal
reads it. Nothing is fetched from CRDS: without a path the functions fail in one
line saying how to give one. The romancal wheel ships a subset (the polar
projection regions) in ``romancal/skycell/tests/data/skymap_subset.asdf``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..inputs.io import ExposureRef, InputError
from .grids import sregion_polygons

__all__ = [
    "NO_SKYMAP_MESSAGE",
    "skycell_from_association",
    "skycell_output_wcs",
    "skycells_touched",
    "use_skymap",
]

NO_SKYMAP_MESSAGE = "skycells: no skymap file; set SKYMAP_PATH to the skycells reference file (or pass skymap=PATH)"


def use_skymap(path: str | os.PathLike | None = None) -> Any:
    """romancal's skymap, read from ``path`` (else ``SKYMAP_PATH``).

    romancal's skycell matching uses its global skymap in places, so that is
    the one pointed at ``path``.

    Returns
    -------
    romancal.skycell.skymap.SkyMap

    Raises
    ------
    InputError
        Without a path, or when the file is missing (the message says which).
    """
    try:
        import romancal.skycell.skymap as sc
    except ImportError:
        raise InputError("skycells need the 'roman' extra: pip install 'dask-resample[roman]'") from None
    chosen = path if path is not None else os.environ.get("SKYMAP_PATH") or sc.SKYMAP.path
    if chosen is None:
        raise InputError(NO_SKYMAP_MESSAGE)
    chosen = Path(chosen)
    if not chosen.is_file():
        raise InputError(f"{chosen}: skymap file not found")
    if sc.SKYMAP.path is None or Path(sc.SKYMAP.path).resolve() != chosen.resolve():
        sc.SKYMAP.path = chosen
    return sc.SKYMAP


def skycell_output_wcs(name: str, skymap: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``output_wcs`` of one skycell (romancal's WCS of it), for :func:`dask_resample.resample`.

    Parameters
    ----------
    name : str
        Skycell name (``"135p90x25y50"``).
    skymap : path-like, optional
        Skymap file (default ``SKYMAP_PATH``).

    Raises
    ------
    InputError
        For an unknown skycell (one line naming it).
    """
    import romancal.skycell.skymap as sc

    use_skymap(skymap)
    try:
        cells = sc.SkyCells.from_names([name])
    except Exception:
        raise InputError(f"skycell {name!r}: not in the skymap {sc.SKYMAP.path}") from None
    wcs = cells.wcs[0]
    if getattr(wcs, "array_shape", None) is None:  # as stcal's output check sets it: the skycell's pixels
        wcs.array_shape = tuple(int(n) for n in cells.pixel_shape[::-1])
    return {"wcs": wcs}


def skycell_from_association(asn: str | os.PathLike | Mapping[str, Any]) -> str:
    """The skycell an association names, as romancal finds it (``skycell_wcs_info.name``, else ``target``).

    Raises
    ------
    InputError
        When the association names none.
    """
    doc = asn if isinstance(asn, Mapping) else json.loads(Path(asn).read_text())
    info = doc.get("skycell_wcs_info")
    if isinstance(info, Mapping) and info.get("name"):
        return str(info["name"])
    target = doc.get("target")
    if target and str(target).lower() != "none":
        return str(target)
    raise InputError(
        f"{asn if not isinstance(asn, Mapping) else 'association'}: names no skycell "
        "(neither skycell_wcs_info nor target)"
    )


def skycells_touched(refs: Sequence[ExposureRef], skymap: str | os.PathLike | None = None) -> dict[str, list[int]]:
    """Skycells each input's footprint overlaps (romancal's ``find_skycell_matches``).

    Returns
    -------
    dict
        Skycell name -> indices (into ``refs``) of the inputs touching it, names in
        skymap order.
    """
    import romancal.skycell.skymap as sc
    from romancal.skycell.match import find_skycell_matches

    use_skymap(skymap)
    found: dict[int, list[int]] = {}
    for k, ref in enumerate(refs):
        for polygon in sregion_polygons(ref.s_region or ""):
            for index in find_skycell_matches(np.asarray(polygon, dtype=np.float64)):
                if k not in found.setdefault(int(index), []):
                    found[int(index)].append(k)
    names = sc.SkyCells(np.array(sorted(found), dtype=int)).names if found else []
    return {str(name): found[index] for name, index in zip(names, sorted(found), strict=True)}


# ---------------------------------------------------------------------------------------------------------
# Projection regions: one tangent-plane grid per region, tiles aligned to skycell boundaries.
#
# romancal gives a skycell the WCS of its projection region (same tangent point,
# pixel scale and orientation: ``orientat_projection_center``) with the reference
# pixel moved to the skycell's ``x_tangent``/``y_tangent``. Both tangent pixels are
# half-integers, so a skycell's pixel (y, x) is the region's pixel
# (y + y_tangent_region - y_tangent_cell, x + x_tangent_region - x_tangent_cell), an
# integer shift. In the skymap the skycells of a region sit on a lattice of pitch
# ``nxy_skycell - 2 * skycell_border_pixels`` (5000 - 2 * 100 = 4800) and overlap
# their neighbours by twice the border (200 pixels).
