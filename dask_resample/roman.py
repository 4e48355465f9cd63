"""Roman WFI: romancal's ``ResampleStep`` parameters and the coadd exposure times of a mosaic.

Roman Level-2 images (``WfiImage`` ASDF files, associations, romancal's
``ModelLibrary``, open datamodels) are read by
:mod:`dask_resample.inputs.drivers.roman_model`; :func:`dask_resample.resample` takes
them like any input. Give it the parameters of romancal's ``ResampleStep``::

    from dask_resample import resample
    from dask_resample.roman import roman_params, coadd_exposure_times

    mosaic = resample("r0000101_asn.json", "mosaic.zarr", params=roman_params(pixfrac=0.8))
    mean_time, max_time = coadd_exposure_times(mosaic)

:func:`roman_params` is :class:`~dask_resample.params.ResampleParams` with
:data:`~dask_resample.params.ROMAN_STEP_DEFAULTS` and Roman's DQ flag names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .api import resample
from .geometry import gwcs_from_text
from .geometry.projection_regions import (
    RegionGrid,
    projection_region_grid,
    projection_region_index,
    skycell_regions,
    skycell_tile_shape,
)
from .geometry.skycells import skycell_output_wcs, skycells_touched
from .inputs.io import InputError, collect_exposures
from .params import ResampleParams, step_defaults, step_params
from .store import Location, as_location

__all__ = [
    "RegionMosaic",
    "coadd_exposure_times",
    "resample_region",
    "resample_skycells",
    "roman_params",
    "roman_step_defaults",
    "to_mosaic_model",
]


@dataclass(frozen=True)
class RegionMosaic:
    """A mosaic on a projection region's grid (:func:`resample_region`).

    Parameters
    ----------
    mosaic : xarray.Dataset
        The mosaic.
    grid : RegionGrid
        Its grid: the region, its origin in romancal's region pixel frame and
        each skycell's pixel box.
    """

    mosaic: Any
    grid: RegionGrid

    def skycell(self, name: str) -> Any:
        """The mosaic cut at skycell ``name``'s box (lazy): its pixels are that skycell's pixels.

        Raises
        ------
        KeyError
            For a skycell not in the grid.
        """
        ys, xs = self.grid.box(name).slices_yx
        dims = self.mosaic["data"].dims
        return self.mosaic.isel({dims[-2]: ys, dims[-1]: xs})


def roman_step_defaults() -> dict[str, Any]:
    """Every parameter's default as romancal's ``ResampleStep`` has it."""
    return step_defaults("roman")


def roman_params(**kwargs: Any) -> ResampleParams:
    """The parameters of romancal's ``ResampleStep``, with ``kwargs`` over its defaults.

    Parameters
    ----------
    **kwargs
        Fields of :class:`~dask_resample.params.ResampleParams`.

    Returns
    -------
    ResampleParams
        With Roman's DQ flag names for ``good_bits`` mnemonics.
    """
    return step_params("roman", **kwargs)


def coadd_exposure_times(mosaic: Any) -> tuple[float, float]:
    """``meta.coadd_info.exposure_time`` and ``max_exposure_time`` as romancal computes them.

    The mean of the exposure-time map over the pixels where it is positive
    (0 when there is none), and its maximum; computed tile by tile.

    Parameters
    ----------
    mosaic : xarray.Dataset
        A mosaic made with ``compute_exptime`` (``roman_params()`` has it), as
        :func:`dask_resample.resample` or ``open_mosaic`` return it.

    Returns
    -------
    (float, float)

    Raises
    ------
    ValueError
        If the mosaic has no exposure-time map.
    """
    import dask

    if "exptime" not in mosaic.data_vars:
        raise ValueError("mosaic: no exposure-time map ('exptime'); resample with compute_exptime=True")
    a = mosaic["exptime"].data
    positive = a > 0
    total = dask.array.where(positive, a.astype(np.float64), 0.0).sum()
    count = positive.sum()
    peak = a.max()
    total, count, peak = dask.compute(total, count, peak)
    mean = float(total) / int(count) if int(count) else 0.0
    return mean, float(peak)


def resample_skycells(
    inputs: Any,
    directory: str | os.PathLike | Location,
    *,
    skymap: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    params: ResampleParams | None = None,
    client: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """One mosaic per skycell the inputs touch, as romancal's skycell products are cut.

    Each skycell's mosaic is made from the inputs whose footprint overlaps it
    (romancal's ``find_skycell_matches``), in input order, on the skycell's own
    grid, and written to ``directory/<skycell>.zarr``.

    Parameters
    ----------
    inputs
        Anything :func:`dask_resample.resample` takes.
    directory : path-like, str or Location
        Where the mosaics go: a local directory or an object-store URL
        (``s3://bucket/prefix``), never turned into a local path.
    skymap : path-like, optional
        The skymap file (default: ``SKYMAP_PATH``).
    names : sequence of str, optional
        Only these skycells (those the inputs touch).
    params : ResampleParams, optional
        Default :func:`roman_params`.
    client : distributed.Client, optional
    storage_options : mapping, optional
        fsspec options of ``directory`` when it is a URL (credentials,
        ``endpoint_url``), also used to read URL inputs.
    **kwargs
        Other arguments of :func:`dask_resample.resample` (``tile_shape``, ``overwrite``, ...).

    Returns
    -------
    dict
        Skycell name -> its mosaic (``xarray.Dataset``), written to
        ``directory.join(f"{name}.zarr")``.
    """
    where = as_location(directory, storage_options)
    refs = collect_exposures(inputs, client=client, storage_options=storage_options)
    touched = skycells_touched(refs, skymap)
    if names is not None:
        touched = {name: touched[name] for name in names if name in touched}
    params = params or roman_params()
    out = {}
    for name, members in touched.items():
        out[name] = resample(
            [refs[k] for k in members],
            where.join(f"{name}.zarr"),
            storage_options=storage_options,
            output_wcs=skycell_output_wcs(name, skymap),
            params=params,
            client=client,
            **kwargs,
        )
    return out


def resample_region(
    inputs: Any,
    output: str | Path | Location,
    *,
    region: int | str | None = None,
    skymap: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    params: ResampleParams | None = None,
    tile_shape: Sequence[int] | None = None,
    client: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> RegionMosaic:
    """One mosaic on a projection region's grid, its pixels those of the region's skycells.

    The grid is :func:`~dask_resample.geometry.projection_regions.projection_region_grid`'s
    over the skycells of ``region`` the inputs touch (romancal's
    ``find_skycell_matches``), so it is only as large as the data need; the
    skycell ``name``'s pixels are the mosaic's pixels inside its box
    (``RegionMosaic.grid.box(name)``; ``RegionMosaic.skycell(name)`` cuts it
    out), and its tiles start on skycell boundaries (tile side dividing
    the skycell pitch, :func:`~dask_resample.geometry.projection_regions.skycell_tile_shape`).
    The inputs touching those skycells are drizzled, in input order.

    Parameters
    ----------
    inputs
        Anything :func:`dask_resample.resample` takes.
    output : path-like, str or Location
        Where the mosaic goes.
    region : int or str, optional
        Projection region (index, ``"proj<index>"`` or a skycell name's region
        part such as ``"135p90"``); default the one region the inputs touch.
    skymap : path-like, optional
        The skymap file (default: ``SKYMAP_PATH``).
    names : sequence of str, optional
        Span these skycells of the region instead of those the inputs touch
        (and drizzle the inputs touching them; ``region`` defaults to theirs).
    params : ResampleParams, optional
        Default :func:`roman_params`.
    tile_shape : (int, int), optional
        Default :func:`~dask_resample.geometry.projection_regions.skycell_tile_shape` (960 x 960
        for the default 1024); a side not dividing the pitch is allowed but then
        skycells no longer start on tile corners.
    client : distributed.Client, optional
    storage_options : mapping, optional
        fsspec options of ``output`` when it is a URL, also used to read URL inputs.
    **kwargs
        Other arguments of :func:`dask_resample.resample` (``overwrite``,
        ``max_output_pixels``, ...).

    Returns
    -------
    RegionMosaic
        The mosaic (``xarray.Dataset``) and its grid.

    Raises
    ------
    InputError
        For an unknown region, inputs touching no skycell of it, or (without
        ``region``) inputs touching several regions (one line naming them).
    """
    refs = collect_exposures(inputs, client=client, storage_options=storage_options)
    touched = skycells_touched(refs, skymap)
    by_region = skycell_regions(list(touched), skymap)
    if region is not None:
        index = projection_region_index(region, skymap)
    else:
        found = skycell_regions(list(names), skymap) if names is not None else by_region
        if len(found) != 1:
            what = "names lie in" if names is not None else "inputs touch"
            raise InputError(f"region: the {what} projection regions {sorted(found) or 'none'}; give one")
        index = next(iter(found))
    cells = list(names) if names is not None else by_region.get(index, [])
    if not cells:
        raise InputError(f"region: the inputs touch no skycell of projection region {index}")
    grid = projection_region_grid(index, skymap, skycells=cells)
    members = sorted({k for name in cells for k in touched.get(name, [])})
    if not members:
        raise InputError(f"names: no input touches the skycells {cells}")
    mosaic = resample(
        [refs[k] for k in members],
        output,
        storage_options=storage_options,
        output_wcs={"wcs": grid.wcs()},
        params=params or roman_params(),
        client=client,
        tile_shape=tuple(tile_shape) if tile_shape is not None else skycell_tile_shape(skymap=skymap),
        **kwargs,
    )
    return RegionMosaic(mosaic, grid)


def to_mosaic_model(mosaic: Any, path: str | os.PathLike | None = None) -> Any:
    """The mosaic as a romancal ``MosaicModel`` (Level 3), validated, and saved to ``path`` if given.

    The arrays (``data``, ``weight``, ``context``, ``err``, ``var_rnoise``,
    ``var_poisson``, ``var_flat`` where made) are read whole; the WCS is the
    mosaic's gwcs, with ``meta.wcsinfo`` filled by romancal's own
    ``assign_l3_wcs``; ``meta.resample`` holds the parameters and
    ``meta.coadd_info`` the exposure times (:func:`coadd_exposure_times`).
    Metadata romancal blends from the inputs' headers is left at the model's
    placeholders.

    Parameters
    ----------
    mosaic : xarray.Dataset
        A many-to-one mosaic (or one group of a many-to-many one).
    path : path-like, optional
        Where to write the ASDF file.

    Returns
    -------
    roman_datamodels.datamodels.MosaicModel
    """
    import warnings

    import roman_datamodels.datamodels as rdm
    from romancal.resample._l3_wcs import assign_l3_wcs

    meta = mosaic.attrs["dask_resample"]
    params = meta["params"]
    shape = tuple(int(n) for n in mosaic["data"].shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = rdm.MosaicModel.create_fake_data(shape=shape)
    model.data = mosaic["data"].values.astype(np.float32)
    model.weight = mosaic["wht"].values.astype(np.float32)
    if "con" in mosaic:
        model.context = mosaic["con"].values.view(np.uint32)
    for name in ("err", "var_rnoise", "var_poisson", "var_flat"):
        if name in mosaic:
            setattr(model, name, mosaic[name].values.astype(np.float32))
    if "dq" in mosaic:
        model.dq = mosaic["dq"].values.astype(np.uint32)
    wcs = gwcs_from_text(meta["wcs_asdf"])
    if getattr(wcs, "array_shape", None) is None:
        wcs.array_shape = shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assign_l3_wcs(model, wcs)
    resample = model.meta.resample
    resample.good_bits = str(params["good_bits"])
    resample.pixel_scale_ratio = float(meta["grid"]["pixel_scale_ratio"])
    resample.pixfrac = float(params["pixfrac"])
    resample.weight_type = str(params["weight_type"])
    resample.pointings = len({row["group_id"] for row in meta.get("inputs", [])})
    resample.members = [str(row["filename"]) for row in meta.get("inputs", [])]
    if float(params["pixmap_stepsize"]).is_integer():  # the schema's type (romancal's step takes integers only)
        resample["pixmap_stepsize"] = int(params["pixmap_stepsize"])
    resample["pixmap_order"] = int(params["pixmap_order"])
    if "exptime" in mosaic:
        mean, peak = coadd_exposure_times(mosaic)
        model.meta.coadd_info.exposure_time = mean
        model.meta.coadd_info["max_exposure_time"] = peak
    model.meta.cal_step["resample"] = "COMPLETE"
    if path is not None:
        model.meta.filename = Path(path).name
    model.validate()
    if path is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(str(path))
    return model
