"""Per-input work: the outlier mask of one exposure and what is written for it.

With ``resample_data=True`` the median is blotted onto the input
(:mod:`dask_resample.outliers.blot`) and pixels are flagged by stcal's
``flag_resampled_crs`` (difference above ``scale * |derivative of the blot| +
snr * err``, the first pass smoothed by a 3x3 box); with ``resample_data=False``
by ``flag_crs`` against the median of the inputs on their own grid. The
background level added to the blot is ``backg``, or the exposure's own level
when it is known and not subtracted, as in jwst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..drizzle.worker_memory import collect_garbage, release_free_memory
from ..geometry import TileGrid
from ..inputs._files import file_exists, load_arrays, remove_file, save_arrays
from ..inputs.dqmask import write_mask
from ..inputs.failures import TaskFailure, worker_task
from ..inputs.io import ExposureRef, InputError, load_model_dict
from ..store.location import Location
from .blot import blot_median
from .params import OutlierParams
from .products import write_blot, write_crf

__all__ = ["FlagSpec", "FlagTask", "MaskInputTask", "effective_backg", "flag_task", "mask_input_task"]


def effective_backg(model: dict[str, Any], backg: float) -> float:
    """Background added to the blot: the exposure's level if known and not subtracted, else ``backg``."""
    if model.get("subtracted") is False and model.get("level") is not None:
        return float(model["level"])
    return float(backg)


def _error_array(model: dict[str, Any], filename: str) -> np.ndarray:
    """The input's error array (the noise the flags are measured against).

    Raises
    ------
    InputError
        If the input has none (e.g. a plain FITS image without an ``ERR`` extension).
    """
    err = model.get("err")
    data = model["data"]
    if err is None or np.shape(err) != np.shape(data):
        raise InputError(
            f"{filename}: no error array (ERR) of the data's shape; outlier detection compares "
            "each pixel with its error"
        )
    return np.asarray(err)


#: Rows flagged per call of ``flag_resampled_crs`` (its temporaries are a few arrays of this many rows).
FLAG_BAND_ROWS = 256


def flag_resampled_banded(
    data: np.ndarray,
    err: np.ndarray,
    blot: np.ndarray,
    snr1: float,
    snr2: float,
    scale1: float,
    scale2: float,
    backg: float,
    rows: int = FLAG_BAND_ROWS,
) -> np.ndarray:
    """stcal's ``flag_resampled_crs``, a band of rows at a time, with the same result.

    A pixel's flag depends on the blot's derivative at its 3x3 neighbours, which
    depends on the blot one row further: each band is computed with two extra
    rows on each side (the image's own edges are kept as edges) and cropped.
    """
    from stcal.outlier_detection.utils import flag_resampled_crs

    ny = data.shape[0]
    mask = np.empty(data.shape, bool)
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        a0, a1 = max(0, r0 - 2), min(ny, r1 + 2)
        band = flag_resampled_crs(data[a0:a1], err[a0:a1], blot[a0:a1], snr1, snr2, scale1, scale2, backg)
        mask[r0:r1] = band[r0 - a0 : r1 - a0]
    return mask


@dataclass(frozen=True)
class FlagSpec:
    """What every flag task shares (stored once in the graph, under its own key)."""

    params: OutlierParams
    #: ``resample_data=True``: the median store, its WCS, shape and tiling.
    median_store: Location | None = None
    median_wcs: Any = None
    median_shape_yx: tuple[int, int] | None = None
    tile_shape_yx: tuple[int, int] | None = None
    #: ``resample_data=False``: the median's bands, in row order.
    band_paths: tuple[Location, ...] = ()


@dataclass(frozen=True)
class FlagTask:
    """What flagging one input needs besides its reference and the shared :class:`FlagSpec` (small)."""

    mask_path: Location
    #: ``resample_data=True``: the median tiles this task waited for.
    allowed_tiles: tuple[tuple[int, int], ...] = ()
    #: The input's pixel map kept by its drizzle (float32; removed once read), if any.
    pixmap_path: Location | None = None
    #: where the ``*_crf.fits`` file goes (``None``: mask only) and the blot image (``None``: not kept).
    crf_path: str | Location | None = None
    blot_path: str | Location | None = None


@worker_task(lambda ref, *args: f"{ref.filename}: outlier flagging failed")
def flag_task(ref: ExposureRef, upstream: Any, task: FlagTask, spec: FlagSpec) -> dict[str, Any] | TaskFailure:
    """Flag one input's outliers, store its mask and write its ``*_crf.fits`` file (a worker task).

    ``upstream`` are the records of the median tasks the input reads.
    """
    from stcal.outlier_detection.utils import flag_crs

    p = spec.params
    model = load_model_dict(ref, need_var=False, need_err=True)
    for name in ("var_rnoise", "var_poisson", "var_flat", "dq"):  # not needed to flag
        model.pop(name, None)
    collect_garbage()  # the closed file's other arrays
    data = np.asarray(model["data"])
    err = _error_array(model, ref.filename)
    if p.resample_data:
        assert spec.median_store is not None and spec.median_shape_yx is not None and spec.tile_shape_yx is not None
        pixmap32 = None
        if task.pixmap_path is not None and file_exists(task.pixmap_path):
            (pixmap32,) = load_arrays(task.pixmap_path)
        blot = blot_median(
            spec.median_store,
            spec.median_wcs,
            spec.median_shape_yx,
            model["wcs"],
            data.shape,
            stepsize=p.pixmap_stepsize,
            order=p.pixmap_order,
            tiles=TileGrid(spec.median_shape_yx, spec.tile_shape_yx),
            allowed_tiles=task.allowed_tiles,
            pixmap32=pixmap32,
            fillval=p.blot_fill,
        )
        del pixmap32
        mask = flag_resampled_banded(
            data, err, blot, p.snr1, p.snr2, p.scale1, p.scale2, effective_backg(model, p.backg)
        )
    else:
        blot = np.concatenate([load_arrays(b)[0] for b in spec.band_paths])
        if blot.shape != data.shape:
            raise InputError(f"{ref.filename}: shape {data.shape} differs from the median's {blot.shape}")
        mask = flag_crs(data, err, blot, p.snr1)
    del model, data, err
    write_mask(task.mask_path, mask)
    if task.pixmap_path is not None:
        remove_file(task.pixmap_path)
    record: dict[str, Any] = {
        "index": ref.index,
        "filename": ref.filename,
        "n_flagged": int(mask.sum()),
        "mask": task.mask_path.url,
    }
    if task.blot_path is not None:
        # the client refused existing files unless ``overwrite``; what exists now is this run's (a retry)
        record["blot"] = write_blot(ref, blot, task.blot_path, overwrite=True)
    del blot
    if task.crf_path is not None:
        record["crf"] = write_crf(ref, mask, task.crf_path, status="COMPLETE", overwrite=True)
    del mask
    release_free_memory()
    return record


@dataclass(frozen=True)
class MaskInputTask:
    """``resample_data=False``: where one input's weight-masked data go."""

    params: OutlierParams
    path: Location


@worker_task(lambda ref, task: f"{ref.filename}: masking failed")
def mask_input_task(ref: ExposureRef, task: MaskInputTask) -> dict[str, Any] | TaskFailure:
    """An input's data, NaN where its weight is below its threshold (``resample_data=False``; a worker task)."""
    from stcal.outlier_detection.utils import compute_weight_threshold
    from stcal.resample.utils import build_driz_weight

    rp = task.params.resample_params()
    model = load_model_dict(ref, need_var=False, need_err=False)
    data = np.array(model["data"], dtype=np.float32)
    if task.params.rules.stored_variance_weights and model.get("var_rnoise_stored") is False:
        model["var_rnoise"] = None  # as the reference reads the file: no var_rnoise, unit weights
    weight = build_driz_weight(
        model, weight_type=rp.weight_type, good_bits=rp.good_bits, flag_name_map=rp.flag_name_map
    )
    threshold = compute_weight_threshold(weight, task.params.maskpt)
    data[weight < threshold] = np.nan
    save_arrays(task.path, data)
    return {
        "index": ref.index,
        "filename": ref.filename,
        "path": task.path,
        "shape": list(data.shape),
        "threshold": float(threshold),
    }
