"""The passes that drizzle one exposure onto its frame: the fused kernel's one pass, drizzle's C
(one pass per plane) and romancal's exposure-time image; whether the fused kernel applies here;
the part of an input that lands on some tiles (:func:`input_crop`).

:func:`dask_resample.drizzle.kernel._drizzle_frame` calls them; each fills ``parts`` with every
tile's cut of the frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..optional_module import OptionalModule
from ..params import ResampleParams
from .map_scan import map_bounds, map_step, reaching_boxes


class Frame(NamedTuple):
    """What every pass over an exposure's frame shares (:func:`dask_resample.drizzle.kernel._drizzle_frame`)."""

    #: ``Drizzle.add_image`` keyword arguments (pixel map, weights, input range, ...)
    kwargs: dict[str, Any]
    #: the frame's (ny, nx)
    shape: tuple[int, int]
    params: ResampleParams
    #: tile key -> (y0, x0, the tile's slice of the frame)
    boxes: dict[tuple[int, int], tuple[int, int, tuple[slice, slice]]]
    #: tile key -> the list of planes the passes fill
    parts: dict[tuple[int, int], list]


def add_image_kwargs(
    pixmap: np.ndarray,
    weight: np.ndarray,
    rng: tuple[int, int, int, int],
    *,
    exptime: float,
    pixel_scale_ratio: float,
    pixfrac: float,
) -> dict[str, Any]:
    """``Drizzle.add_image``'s keyword arguments as ``stcal.resample.Resample.add_model`` passes them."""
    xmin, xmax, ymin, ymax = rng
    return {
        "exptime": exptime,
        "pixmap": pixmap,
        "pixel_scale_ratio": pixel_scale_ratio,
        "iscale": 1.0,
        "weight_map": weight,
        "wht_scale": 1.0,
        "pixfrac": pixfrac,
        "in_units": "cps",
        "xmin": xmin,
        "xmax": xmax,
        "ymin": ymin,
        "ymax": ymax,
    }


def _cut(a: np.ndarray | None, sl: tuple[slice, slice]) -> np.ndarray | None:
    """A copy of ``a[sl]`` (``None`` stays ``None``)."""
    return None if a is None else a[sl].copy()


def fused_applies(kernel: str, pixfrac: float) -> bool:
    """Whether :mod:`dask_resample.drizzle.fused_kernel` drizzles with ``kernel`` and ``pixfrac``.

    It covers ``square``, ``turbo``, ``lanczos2`` and ``lanczos3`` with ``pixfrac > 0.001``
    (below, drizzle's C decides) and needs numba (the ``fast`` extra); other cases keep
    drizzle's C kernel.
    """
    if pixfrac <= 0.001 or not fused_kernel_available():
        return False
    from .fused_kernel import KERNELS  # deferred: imports numba, an optional dependency

    return kernel in KERNELS


def fused_kernel_available() -> bool:
    """Whether numba, and so :mod:`dask_resample.drizzle.fused_kernel`, can be imported here."""
    return _FUSED.available()


#: The fused kernels' package, imported on first use (numba, the ``fast`` extra).
_FUSED = OptionalModule(
    ".fused_kernel",
    __package__,
    missing="numba is not installed: drizzling with drizzle's C kernel (pip install 'dask-resample[fast]')",
)


def _c_passes(
    data: np.ndarray,
    weight: np.ndarray,
    dq: np.ndarray | None,
    err: np.ndarray | None,
    variances: dict[str, np.ndarray],
    frame: Frame,
) -> None:
    """drizzle's C kernel: one ``add_image`` for the data, then one per error and variance plane."""
    kwargs, shape, params, boxes, parts = frame
    from drizzle.resample import Drizzle

    cut = _cut
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        driz = Drizzle(
            kernel=params.kernel,
            fillval="0",
            out_shape=shape,
            disable_ctx=not params.enable_ctx,
            begin_ctx_id=0,
            max_ctx_id=0,
        )
        if dq is not None:
            driz.add_image(data, dq=dq, **kwargs)
        else:
            driz.add_image(data, **kwargs)
        covered = driz.out_wht != 0
        img_all = np.where(covered, driz.out_img, np.float32(0))
        ctx_all = (driz.out_ctx[0] != 0) if params.enable_ctx else None
        dq_all = driz.out_dq if dq is not None else None
        for key, (_, _, sl) in boxes.items():
            parts[key] = [cut(img_all, sl), cut(driz.out_wht, sl), cut(ctx_all, sl), cut(dq_all, sl), None, {}]
        del driz, img_all, ctx_all, dq_all
        if err is not None:
            derr = Drizzle(kernel=params.kernel, fillval="0", out_shape=shape, disable_ctx=True)
            derr.add_image(err, **kwargs)
            err_all = np.where(covered, derr.out_img, np.float32(0))
            del derr
            for key, (_, _, sl) in boxes.items():
                parts[key][4] = cut(err_all, sl)
            del err_all
        for name, var in variances.items():
            dv = Drizzle(kernel=params.kernel, fillval=np.nan, out_shape=shape, disable_ctx=True)
            with np.errstate(invalid="ignore"):
                sqrt_var = np.sqrt(var)
            dv.add_image(sqrt_var, **kwargs)
            del sqrt_var
            for key, (_, _, sl) in boxes.items():
                parts[key][5][name] = dv.out_img[sl] ** 2
            del dv


def _fused_passes(
    data: np.ndarray,
    dq: np.ndarray | None,
    err: np.ndarray | None,
    variances: dict[str, np.ndarray],
    frame: Frame,
    *,
    visit: tuple[int, int, int, int] | None = None,
    window: tuple[int, int, int, int] | None = None,
    shrunk: bool = False,
) -> None:
    """One pass of :class:`~dask_resample.drizzle.fused_kernel.FusedDrizzle` for every plane.

    ``visit`` and ``window`` (:mod:`dask_resample.drizzle.windows`): the input arrays hold
    only that box of input pixels, and the planes only that window of the frame (the
    boxes of ``frame`` are then slices of the window); ``shrunk``: the input range of
    ``frame.kwargs`` is already shrunk to a finite map.

    The frame is fresh, so each plane's weight is the data's: the drizzled error
    and every ``(drizzled sqrt(var))**2`` equal what the separate C passes of
    :func:`_c_passes` give (``tests/test_fused_kernel.py``). A variance of lower
    precision than float32 (Roman's float16) has its square root taken in its own
    dtype, as the C passes take it (``numpy.sqrt``), and is drizzled as a plane.
    """
    kwargs, shape, params, boxes, parts = frame
    from .fused_kernel import FusedDrizzle  # deferred: imports numba, an optional dependency

    planes = {"err": err} if err is not None else {}
    exact = {n: v for n, v in variances.items() if np.asarray(v).dtype in (np.float32, np.float64)}
    with np.errstate(invalid="ignore"):
        rooted = {n: np.sqrt(v) for n, v in variances.items() if n not in exact}
    planes.update({f"sqrt {n}": v for n, v in rooted.items()})
    driz = FusedDrizzle(
        shape,
        kernel=params.kernel,
        fillval=0.0,
        begin_ctx_id=0,
        max_ctx_id=0,
        disable_ctx=not params.enable_ctx,
        plane_names=tuple(planes),
        plane_fillval=0.0,
        variance_names=tuple(exact),
        accumulate_variances=False,
        window=window,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        driz.add_image(data, planes=planes, variances=exact, dq=dq, visit=visit, shrunk=shrunk, **kwargs)
    del rooted
    ctx_all = (driz.out_ctx[0] != 0) if driz.out_ctx is not None else None  # None: not params.enable_ctx
    err_all = driz.out_planes.get("err")
    var_all = {}
    for name in variances:
        if name in exact:
            var_all[name] = driz.input_variance(name)
        else:
            m = driz.out_planes[f"sqrt {name}"]
            np.multiply(m, m, out=m)
            m[driz.out_wht == 0] = np.nan
            var_all[name] = m
    for key, (_, _, sl) in boxes.items():
        parts[key] = [
            _cut(driz.out_img, sl),
            _cut(driz.out_wht, sl),
            _cut(ctx_all, sl),
            _cut(driz.out_dq, sl),
            _cut(err_all, sl),
            {name: _cut(v, sl) for name, v in var_all.items()},
        ]


def _exptime_pass(
    exptime_image: tuple[np.ndarray, np.ndarray],
    frame: Frame,
) -> None:
    """romancal's ``ExptimeResampler`` image of this input (drizzle's C): the last item of each part."""
    kwargs, shape, params, boxes, parts = frame
    from drizzle.resample import Drizzle

    image, unit_weight = exptime_image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = Drizzle(kernel=params.kernel, fillval=0, out_shape=shape, disable_ctx=True)
        dt.add_image(image, **{**kwargs, "exptime": 1.0, "weight_map": unit_weight, "pixfrac": 1.0})
    for key, (_, _, sl) in boxes.items():
        parts[key][6] = _cut(dt.out_img, sl)


def _unclipped_frame_box(
    pixmap: np.ndarray, rng: tuple[int, int, int, int], pad: int
) -> tuple[int, int, int, int] | None:
    """``drizzle.kernel._frame_box`` before it is clipped to the mosaic (``None``: nothing of the input maps)."""
    bounds = map_bounds(pixmap, rng)
    if bounds is None:
        return None
    px0, px1, py0, py1 = bounds
    return (
        int(np.floor(py0)) - pad,
        int(np.ceil(py1)) + pad + 1,
        int(np.floor(px0)) - pad,
        int(np.ceil(px1)) + pad + 1,
    )


#: Input pixels kept around a crop (:func:`input_crop`) beyond those that can reach its tiles.
CROP_MARGIN_PX = 2


def input_crop(
    pixmap: np.ndarray,
    rng: tuple[int, int, int, int],
    tiles: Sequence[Any],
    *,
    params: ResampleParams,
    pixel_scale_ratio: float,
    halo: int,
    shape_yx: tuple[int, int],
    unclipped: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int] | None:
    """The part of the input range whose pixels can land on ``tiles``: ``(xmin, xmax, ymin, ymax)``.

    Drizzling an input pixel changes only the output pixels its kernel footprint
    overlaps, and each of them in input order (row by row): restricted to the
    input rows and columns that reach ``tiles``, the drizzle of the exposure's
    frame (``drizzle.kernel._frame_box``, unchanged) gives those tiles the same bits as the
    whole input range. A pixel is kept when its mapped centre lies within
    ``reach`` output pixels of a tile, ``reach`` bounding every kernel's footprint:
    ``kernel_reach`` input pixels (``params.kernel_reach``: square and turbo 1,
    gaussian 2, lanczos2 3, lanczos3 4, times ``pixfrac`` when above 1) at the
    larger of the map's steepest step between neighbouring pixels and
    ``1 / pixel_scale_ratio`` (the scale of the turbo, gaussian and lanczos
    footprints), plus 2 output pixels; then :data:`CROP_MARGIN_PX` more input
    pixels on each side, so that the crop's own edge rows and columns reach
    nothing. The pixel map is the whole input's (its interpolation at the crop's
    edges and ``pixmap_stepsize`` are unchanged).

    The drizzle kernels scan the part of their input range that lands on the
    frame; where the mosaic's edge clips the frame, which input pixels straddling
    it are drizzled depends on the clipped outline. The crop is kept only where
    every pixel it holds lands at least ``2 * step + 2`` output pixels inside
    each clipped edge of the frame (far from the outline's clipped part, in the
    crop's drizzle and the whole input's alike); otherwise the whole range is returned.

    Parameters
    ----------
    pixmap : numpy.ndarray
        The whole input's pixel map on the mosaic, ``(ny, nx, 2)`` (x, y).
    rng : tuple of int
        The input range ``(xmin, xmax, ymin, ymax)`` drizzled (``stcal``'s ``resample_range``).
    tiles : sequence of Tile
        The tiles wanted (``y0, y1, x0, x1`` on the mosaic).
    params : ResampleParams
    pixel_scale_ratio : float
        The drizzle's ``pixel_scale_ratio``.
    halo : int
        The frame's padding (:class:`~dask_resample.drizzle.kernel.DrizzleSpec` ``halo``).
    shape_yx : tuple of int
        The mosaic's shape.
    unclipped : tuple of int, optional
        ``_unclipped_frame_box(pixmap, rng, halo)``, when the caller has it.

    Returns
    -------
    tuple of int or None
        The cropped range (``rng`` itself when nothing can be cropped); ``None``
        when no input pixel reaches ``tiles``.
    """
    xmin, xmax, ymin, ymax = rng
    step = map_step(pixmap, rng)
    psr = float(pixel_scale_ratio or 0.0)
    if not (np.isfinite(step) and psr > 0):
        return rng
    reach = params.kernel_reach * max(step, 1.0 / psr) + 2.0
    limits = [
        (tile.x0 - 0.5 - reach, tile.x1 - 0.5 + reach, tile.y0 - 0.5 - reach, tile.y1 - 0.5 + reach) for tile in tiles
    ]
    found = reaching_boxes(pixmap, rng, np.array(limits, dtype=np.float64))
    found = found[found[:, 1] >= 0]
    if len(found) == 0:
        return None
    crop = (
        max(xmin, int(found[:, 2].min()) - CROP_MARGIN_PX),
        min(xmax, int(found[:, 3].max()) + CROP_MARGIN_PX),
        max(ymin, int(found[:, 0].min()) - CROP_MARGIN_PX),
        min(ymax, int(found[:, 1].max()) + CROP_MARGIN_PX),
    )
    if crop == tuple(rng):
        return rng
    if unclipped is None:
        unclipped = _unclipped_frame_box(pixmap, rng, halo)
    inner = _unclipped_frame_box(pixmap, crop, 0)
    if unclipped is None or inner is None:
        return rng
    ny, nx = shape_yx
    margin = 2.0 * step + 2.0
    uy0, uy1, ux0, ux1 = unclipped
    cy0, cy1, cx0, cx1 = inner  # the crop's mapped centres: [cy0, cy1 - 1] x [cx0, cx1 - 1], rounded outwards
    if (
        (uy0 < 0 and cy0 - margin < -0.5)
        or (ux0 < 0 and cx0 - margin < -0.5)
        or (uy1 > ny and cy1 - 1 + margin > ny - 0.5)
        or (ux1 > nx and cx1 - 1 + margin > nx - 0.5)
    ):
        return rng  # the crop comes near an edge where the mosaic clips the frame: the whole range
    return crop
