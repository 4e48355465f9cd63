"""The passes of the fused kernels (``square``, ``turbo``, ``lanczos2``, ``lanczos3``) and what runs
after them (fill, stcal variances)."""

# The C's ternaries (MAX, MIN, clamps) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .common import _KERNEL_CODE, _OK, _imax, _imin, _jit, _jit_inline
from .footprints import (
    Lanczos2Kernel,
    Lanczos3Kernel,
    SquareKernel,
    TurboKernel,
    axis_factor,
    bounds,
    footprint,
    overlap,
    separable,
    setup,
    weight,
)
from .scanner import _init_image_scanner, _scanline_limits

_SQUARE = _KERNEL_CODE["square"]
_TURBO = _KERNEL_CODE["turbo"]
_LANCZOS2 = _KERNEL_CODE["lanczos2"]

# --------------------------------------------------------------------------- accumulation (per output pixel hit)


@_jit_inline
def _mean_update(old: np.float32, c: np.float32, value: np.float32, dow: np.float32, cd: float) -> np.float32:
    """The running weighted mean of one plane after one contribution (``update_data``).

    ``c`` is the plane's weight before the contribution ``(value, dow)`` and ``cd``
    the widened float32 sum ``c + dow``: ``value`` if ``c == 0``, else
    ``float32((old * c + dow * value) / cd)`` with the numerator in float32.
    Scalars only: the drivers load and store (an array passed to an inlined
    function costs a reference count per call).
    """
    if c == 0.0:
        return value
    return np.float32((old * c + dow * value) / cd)


# --------------------------------------------------------------------------- drivers (one pass over the input)
#
# Optional outputs and inputs are passed as None: numba compiles one specialisation
# per combination actually used (and caches it), with the unused branches removed.
#
# ``place`` (int64) = (vy0, vy1, vx0, vx1, wy0, wx0, frame_ny, frame_nx) places the arrays:
# only input pixels of rows vy0..vy1 and columns vx0..vx1 are drizzled, and the input
# arrays (data, weights, DQ, extra planes) hold exactly that box (their [0, 0] is input
# pixel (vy0, vx0)); the output arrays are the window of the (frame_ny, frame_nx) frame
# whose [0, 0] is frame pixel (wy0, wx0). Everything geometric (the pixel map, the
# scanner, the overlaps) stays in whole-input and whole-frame coordinates, so the values
# in the window are those of the whole frame bit for bit, and an input pixel outside the
# box contributes nothing else: the caller's box holds every pixel that reaches the window.
#
# One driver body (:func:`_kernel_pass`) serves every kernel: the kernel's scalar geometry
# (set-up, footprint, its bounds and weight, the overlap with one output pixel) comes
# from :mod:`.footprints`, chosen by the type of a tag when each kernel's pass
# (:func:`_kernel_pass`) is compiled: no branch per pixel. Only scalars cross
# those calls; the arrays stay in the driver (an array passed to a shared accumulation
# function cost reference counting per output pixel: the 2048² square pass of
# benchmarks/bench_fused_kernel.py went from 1.08 s to 2.57 s that way).


def _kernel_pass(kernel: str) -> Any:
    """The compiled one-pass driver of ``kernel`` (``square``, ``turbo``, ``lanczos2`` or ``lanczos3``).

    The kernel is a closure constant (an int: numba's cache keys on it) that numba
    resolves before typing, so each kernel's pass compiles (and is cached) on its own,
    with its kernel's geometry only (:mod:`.footprints`, chosen by the tag's type).
    """
    kernel_code = _KERNEL_CODE[kernel]

    def one_pass(
        arrays: tuple,
        scalars: tuple,
        weights: np.ndarray | None,
        ctx: np.ndarray | None,
        dq: np.ndarray | None,
        out_dq: np.ndarray | None,
        extra_in: tuple | None,
        extra_out: np.ndarray | None,
        exp_wht: np.ndarray | None,
    ) -> tuple[int, int, int]:
        """One pass of the kernel over the input.

        Parameters
        ----------
        arrays : tuple
            ``(pixmap, data, out_img, out_wht, extra_sqrt, extra_own, box, place)``; ``box``
            receives the touched output box.
        scalars : tuple
            ``(wscale, iscale, pixfrac, pscale_ratio, xmin, xmax, ymin, ymax, ctx_bit, n_extra)``;
            ``pscale_ratio`` is used by ``turbo`` only.
        weights, ctx, dq, out_dq, extra_in, extra_out, exp_wht
            The optional inputs and outputs (``None``: not used; numba compiles each
            combination with the unused branches removed).

        Returns
        -------
        status, nmiss, nskip
        """
        if kernel_code == _SQUARE:  # a closure constant: numba drops the other branches before typing
            tag: Any = SquareKernel()
        elif kernel_code == _TURBO:
            tag = TurboKernel()
        elif kernel_code == _LANCZOS2:
            tag = Lanczos2Kernel()
        else:
            tag = Lanczos3Kernel()
        pixmap, data, out_img, out_wht, extra_sqrt, extra_own, box, place = arrays
        wscale, iscale, pixfrac, pscale_ratio, xmin, xmax, ymin, ymax, ctx_bit, n_extra = scalars
        vy0, vy1, vx0, vx1, wy0, wx0, out_ny, out_nx = (
            place[0],
            place[1],
            place[2],
            place[3],
            place[4],
            place[5],
            place[6],
            place[7],
        )
        win_ny, win_nx = out_img.shape
        ok, y_first, y_last, left, right, state, min_y, max_y, poly, npoly = _init_image_scanner(
            pixmap, xmin, xmax, ymin, ymax, out_ny, out_nx
        )
        if not ok:
            return _OK, 0, 0
        status, p0, p1 = setup(tag, pixmap, poly, npoly, pixfrac, pscale_ratio)
        if status != _OK:
            return status, 0, 0
        nskip = (ymax - ymin) - (y_last - y_first)
        nmiss = nskip * (xmax - xmin)
        d_extra = np.zeros(max(n_extra, 1), np.float32)
        sep = separable(tag)  # a constant of the compiled pass: the other branch is removed
        factor_x = np.empty(win_nx if sep else 1, np.float64)  # a separable kernel's factors of one pixel
        factor_y = np.empty(win_ny if sep else 1, np.float64)
        dq_val = np.uint32(0)
        by0 = win_ny
        by1 = -1
        bx0 = win_nx
        bx1 = -1
        for j in range(y_first, y_last + 1):
            code, x_first, x_last = _scanline_limits(j, left, right, state, min_y, max_y, xmin, xmax, ymin, ymax)
            if code == 1:
                nskip += y_last + 1 - j
                nmiss += (y_last + 1 - j) * (xmax - xmin)
                break
            elif code == 2 or code == 3:
                nmiss += xmax - xmin
                nskip += 1
                continue
            nmiss += (xmax - xmin) - (x_last + 1 - x_first)
            if j < vy0 or j > vy1:
                continue  # outside the visited box (after the scanner's step: its state follows every row)
            jd = j - vy0
            for i in range(_imax(x_first, vx0), _imin(x_last, vx1) + 1):
                id_ = i - vx0
                nhit = 0
                # geometry: the pixel's footprint, once
                ok, g = footprint(tag, pixmap, i, j, p0)
                if ok:
                    d = np.float32(data[jd, id_]) * iscale
                    if extra_in is not None:
                        for k in range(n_extra):
                            v = extra_in[k][jd, id_]
                            if extra_sqrt[k]:
                                d_extra[k] = np.float32(np.sqrt(np.float64(v))) * iscale
                            else:
                                d_extra[k] = np.float32(v) * iscale
                    if weights is None:
                        wpix = np.float32(1.0)  # the C's w = 1.0: no weight_scale without a weight map
                    else:
                        wpix = np.float32(weights[jd, id_]) * wscale
                    w = weight(tag, wpix, g)
                    if dq is not None:
                        dq_val = np.uint32(dq[jd, id_])
                    ylo, yhi, xlo, xhi = bounds(tag, g)
                    jj0 = _imax(_imax(ylo, 0), wy0)
                    jj1 = _imin(_imin(yhi, out_ny - 1), wy0 + win_ny - 1)
                    ii0 = _imax(_imax(xlo, 0), wx0)
                    ii1 = _imin(_imin(xhi, out_nx - 1), wx0 + win_nx - 1)
                    if sep:  # geometry: each column's and each row's factor, once
                        for ii in range(ii0, ii1 + 1):
                            factor_x[ii - ii0] = axis_factor(tag, g, 0, ii, p1)
                        for jj in range(jj0, jj1 + 1):
                            factor_y[jj - jj0] = axis_factor(tag, g, 1, jj, p1)
                    for jj in range(jj0, jj1 + 1):
                        for ii in range(ii0, ii1 + 1):
                            # geometry: its overlap with one output pixel, once for every plane
                            if sep:
                                fx = factor_x[ii - ii0]
                                fy = factor_y[jj - jj0]
                                hit = not (math.isnan(fx) or math.isnan(fy))  # NaN: beyond the kernel's table
                                dover = fx * fy
                            else:
                                hit, dover = overlap(tag, ii, jj, g, p1)
                            if hit:
                                dow = np.float32(dover * w)
                                nhit += 1
                                # accumulation: every plane at (jj, ii), drizzle's set_bit then update_data
                                wj = jj - wy0
                                wi = ii - wx0
                                if ctx is not None:  # noqa: SIM102 (alone, numba prunes it at compile time)
                                    if dow > 0.0:
                                        ctx[wj, wi] = ctx[wj, wi] | ctx_bit
                                if dow != 0.0:
                                    by0 = min(by0, wj)
                                    by1 = max(by1, wj)
                                    bx0 = min(bx0, wi)
                                    bx1 = max(bx1, wi)
                                    vc = out_wht[wj, wi]
                                    vcd = np.float64(vc + dow)  # the float32 sum, widened as the C keeps it
                                    out_img[wj, wi] = _mean_update(out_img[wj, wi], vc, d, dow, vcd)
                                    out_wht[wj, wi] = vcd
                                    if out_dq is not None:
                                        if vc == 0.0:
                                            out_dq[wj, wi] = dq_val
                                        else:
                                            out_dq[wj, wi] = out_dq[wj, wi] | dq_val
                                    if extra_out is not None:
                                        ve = vc
                                        ved = vcd
                                        if exp_wht is not None:
                                            ve = exp_wht[wj, wi]
                                            ved = np.float64(ve + dow)
                                            exp_wht[wj, wi] = ved
                                        for k in range(n_extra):
                                            if extra_own[k]:
                                                extra_out[k, wj, wi] = _mean_update(
                                                    extra_out[k, wj, wi], ve, d_extra[k], dow, ved
                                                )
                                            else:
                                                extra_out[k, wj, wi] = _mean_update(
                                                    extra_out[k, wj, wi], vc, d_extra[k], dow, vcd
                                                )
                if nhit == 0:
                    nmiss += 1
        box[0] = by0
        box[1] = by1 + 1
        box[2] = bx0
        box[3] = bx1 + 1
        return _OK, nmiss, nskip

    one_pass.__name__ = one_pass.__qualname__ = f"_{kernel}_pass"  # names its cache files and profiles
    return _jit(one_pass)


#: The pass of each fused kernel.
KERNEL_PASSES = {kernel: _kernel_pass(kernel) for kernel in _KERNEL_CODE}


# --------------------------------------------------------------------------- after the pass


@_jit
def _put_fill(out_img: np.ndarray, out_wht: np.ndarray, fill: np.float32, box: np.ndarray) -> None:
    """Fill value where the weight is 0, inside ``box`` (``put_fill``; elsewhere nothing changed)."""
    for jj in range(box[0], box[1]):
        for ii in range(box[2], box[3]):
            if out_wht[jj, ii] == 0.0:
                out_img[jj, ii] = fill


@_jit
def _variances_stcal(
    box: np.ndarray,
    counts: np.ndarray,
    planes: np.ndarray,
    n_var: int,
    rn_index: int,
    tmeasure: float,
    wsum: np.ndarray,
    wt: np.ndarray,
    reset: bool,
) -> None:
    """Add one input's drizzled variances, as ``Resample.resample_variance_arrays``.

    ``planes[k]`` holds the input's drizzled ``sqrt(var_k)``, valid where
    ``counts != 0`` (elsewhere NaN, drizzle's ``fillval=NaN``). The weight is
    ``1 / var_rnoise`` (float32 reciprocal) for ``rn_index >= 0`` (ivm), else
    ``tmeasure``. With ``reset``, the per-input planes are cleared for the next
    input (NaN, and ``counts`` to 0).
    """
    for jj in range(box[0], box[1]):
        for ii in range(box[2], box[3]):
            covered = counts[jj, ii] != 0.0
            if rn_index >= 0:
                w = 0.0
                if covered:
                    m = planes[rn_index, jj, ii]
                    rn = m * m
                    if rn > 0.0 and math.isfinite(rn):
                        w = np.float64(np.float32(1.0) / rn)
            else:
                w = tmeasure
            for k in range(n_var):
                if covered:
                    m = planes[k, jj, ii]
                    v = m * m
                    if v >= 0.0 and math.isfinite(v) and w > 0.0:
                        s = wsum[k, jj, ii]
                        s64 = 0.0 if math.isnan(s) else np.float64(s)
                        wsum[k, jj, ii] = s64 + (np.float64(v) * w) * w
                        wt[k, jj, ii] = np.float64(wt[k, jj, ii]) + w
                if reset:
                    planes[k, jj, ii] = np.nan
            if reset:
                counts[jj, ii] = 0.0
