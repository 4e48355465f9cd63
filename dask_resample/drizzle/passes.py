"""The passes that drizzle one exposure onto its frame: the fused kernel's one pass, drizzle's C
(one pass per plane) and romancal's exposure-time image; whether the fused kernel applies here.

:func:`dask_resample.drizzle.kernel._drizzle_frame` calls them; each fills ``parts`` with every
tile's cut of the frame.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, NamedTuple

import numpy as np

from ..params import ResampleParams

log = logging.getLogger(__name__)


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


def _cut(a: np.ndarray | None, sl: tuple[slice, slice]) -> np.ndarray | None:
    """A copy of ``a[sl]`` (``None`` stays ``None``)."""
    return None if a is None else a[sl].copy()


def fused_applies(kernel: str, pixfrac: float) -> bool:
    """Whether :mod:`dask_resample.drizzle.fused_kernel` drizzles with ``kernel`` and ``pixfrac``.

    It covers ``square`` and ``turbo`` (drizzle itself uses its point kernel for
    ``pixfrac <= 0.001``) and needs numba (the ``fast`` extra); other cases keep
    drizzle's C kernel.
    """
    if pixfrac <= 0.001 or not fused_kernel_available():
        return False
    from .fused_kernel import KERNELS  # deferred: imports numba, an optional dependency

    return kernel in KERNELS


def fused_kernel_available() -> bool:
    """Whether numba, and so :mod:`dask_resample.drizzle.fused_kernel`, can be imported here."""
    global _FUSED_AVAILABLE
    if _FUSED_AVAILABLE is None:
        try:
            from . import fused_kernel  # noqa: F401  # deferred: imports numba, which may be missing
        except ImportError:
            _FUSED_AVAILABLE = False
            log.info("numba is not installed: drizzling with drizzle's C kernel (pip install 'dask-resample[fast]')")
        else:
            _FUSED_AVAILABLE = True
    return _FUSED_AVAILABLE


_FUSED_AVAILABLE: bool | None = None


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
            kernel=params.kernel, fillval="0", out_shape=shape,
            disable_ctx=not params.enable_ctx, begin_ctx_id=0, max_ctx_id=0,
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
) -> None:
    """One pass of :class:`~dask_resample.drizzle.fused_kernel.FusedDrizzle` for every plane.

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
        shape, kernel=params.kernel, fillval=0.0, begin_ctx_id=0, max_ctx_id=0,
        disable_ctx=not params.enable_ctx, plane_names=tuple(planes), plane_fillval=0.0,
        variance_names=tuple(exact), accumulate_variances=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        driz.add_image(data, planes=planes, variances=exact, dq=dq, **kwargs)
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
        parts[key] = [_cut(driz.out_img, sl), _cut(driz.out_wht, sl), _cut(ctx_all, sl), _cut(driz.out_dq, sl),
                      _cut(err_all, sl), {name: _cut(v, sl) for name, v in var_all.items()}]


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
