"""One fused drizzle call from Python: :func:`drizzle_once` and its argument readers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import _KERNEL_CODE, _NO_PSCALE, CTX_PLANE_BITS, KERNELS
from .geometry import _shrink_image_section
from .passes import KERNEL_PASSES, _put_fill

# --------------------------------------------------------------------------- Python interface


def _fill_value(fillval: Any) -> tuple[bool, float]:
    """drizzle's reading of ``fillval`` for a new output: ``(do_fill, value)``.

    ``None`` and ``"INDEF"`` on a new output mean NaN (``_process_fillval``).
    """
    if fillval is None:
        return True, float("nan")
    if isinstance(fillval, str):
        s = fillval.strip()
        if s.upper() in ("", "INDEF", "NAN"):
            return True, float("nan")
        return True, float(np.float32(float(s)))
    return True, float(np.float32(fillval))


def _input_range(
    shape_yx: tuple[int, int], xmin: int | None, xmax: int | None, ymin: int | None, ymax: int | None
) -> tuple[int, int, int, int]:
    """The input box as ``Drizzle.add_image`` then ``tdriz`` read it (before shrinking)."""
    in_ny, in_nx = shape_yx
    xmin = 0 if xmin is None or xmin < 0 else int(xmin)
    ymin = 0 if ymin is None or ymin < 0 else int(ymin)
    xmax = in_nx - 1 if xmax is None or xmax > in_nx - 1 else int(xmax)
    ymax = in_ny - 1 if ymax is None or ymax > in_ny - 1 else int(ymax)
    if xmax == 0 or xmax >= in_nx:
        xmax = in_nx - 1
    if ymax == 0 or ymax >= in_ny:
        ymax = in_ny - 1
    return xmin, xmax, ymin, ymax


def _float_plane(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float32/float64 2D view (a copy only for other types or layouts)."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def shrunk_range(
    pixmap: np.ndarray, xmin: int | None, xmax: int | None, ymin: int | None, ymax: int | None
) -> tuple[int, int, int, int]:
    """The input range a drizzle call covers: ``add_image``'s box, shrunk to rows and columns with a finite map.

    Returns
    -------
    xmin, xmax, ymin, ymax : int
        Inclusive.

    Raises
    ------
    ValueError
        Fewer than two valid rows or columns, as drizzle.
    """
    x0, x1, y0, y1 = _input_range((int(pixmap.shape[0]), int(pixmap.shape[1])), xmin, xmax, ymin, ymax)
    ok, x0, x1, y0, y1 = _shrink_image_section(pixmap, x0, x1, y0, y1)
    if not ok:
        raise ValueError("No or too few valid pixels in the pixel map.")
    return x0, x1, y0, y1


#: Extra input planes are passed in tuples of a multiple of this length.
_EXTRA_BLOCK = 4


def drizzle_once(
    kernel: str,
    pixmap: np.ndarray,
    data: np.ndarray,
    out_img: np.ndarray,
    out_wht: np.ndarray,
    *,
    exptime: float = 1.0,
    weight_map: np.ndarray | None = None,
    wht_scale: float = 1.0,
    pixfrac: float = 1.0,
    in_units: str = "cps",
    iscale: float = 1.0,
    pixel_scale_ratio: float | None = 1.0,
    xmin: int | None = None,
    xmax: int | None = None,
    ymin: int | None = None,
    ymax: int | None = None,
    out_ctx: np.ndarray | None = None,
    ctx_id: int = 0,
    dq: np.ndarray | None = None,
    out_dq: np.ndarray | None = None,
    extra: Sequence[np.ndarray] = (),
    extra_sqrt: Sequence[bool] = (),
    extra_own_weight: Sequence[bool] = (),
    extra_out: np.ndarray | None = None,
    exp_wht: np.ndarray | None = None,
    fill_value: float | None = None,
    visit: tuple[int, int, int, int] | None = None,
    window: tuple[int, int, int, int] | None = None,
    shrunk: bool = False,
) -> tuple[int, int, tuple[int, int, int, int]]:
    """Drizzle one input onto existing output arrays in one pass (the low-level call).

    Parameters
    ----------
    kernel : {"square", "turbo", "lanczos2", "lanczos3"}
        Drizzle kernel.
    pixmap : numpy.ndarray
        ``(ny, nx, 2)`` float64 map of input pixel centres onto the output frame
        (``[..., 0]`` x, ``[..., 1]`` y), as drizzle takes it.
    data : numpy.ndarray
        ``(ny, nx)`` input data (float32 or float64; read as float32).
    out_img, out_wht : numpy.ndarray
        ``(out_ny, out_nx)`` float32 outputs, updated in place.
    exptime, weight_map, wht_scale, pixfrac, in_units, iscale, pixel_scale_ratio, xmin, xmax, ymin, ymax
        As ``drizzle.resample.Drizzle.add_image``. ``pixel_scale_ratio=None``
        estimates it from the map (turbo).
    out_ctx : numpy.ndarray, optional
        ``(out_ny, out_nx)`` int32 context plane that receives bit ``ctx_id % 32``
        (the caller picks plane ``ctx_id // 32``).
    dq, out_dq : numpy.ndarray, optional
        Input DQ (unsigned, at most 32 bits) and the uint32 output DQ.
    extra : sequence of numpy.ndarray
        Extra ``(ny, nx)`` input planes drizzled with the data's weights.
    extra_sqrt : sequence of bool
        Per extra plane: drizzle its square root (a variance).
    extra_own_weight : sequence of bool
        Per extra plane: its running mean uses ``exp_wht`` (the weight of this
        input alone) instead of ``out_wht``.
    extra_out : numpy.ndarray, optional
        ``(n_extra, out_ny, out_nx)`` float32 outputs of the extra planes.
    exp_wht : numpy.ndarray, optional
        ``(out_ny, out_nx)`` float32 weight of this input alone (required when
        any ``extra_own_weight``), updated in place.
    fill_value : float, optional
        Written where ``out_wht == 0`` in the touched box after the pass.
    visit : (y0, y1, x0, x1), optional
        Drizzle only the input pixels of this box (half-open, input pixels); ``data``,
        ``weight_map``, ``dq`` and ``extra`` then hold exactly this box, while ``pixmap``
        is the whole input's and the scan (input range, outline, clipping) is the whole
        range's. Default: the whole input, ``data`` of the pixel map's shape.
    window : (y0, x0, frame_ny, frame_nx), optional
        The outputs are the window of a ``(frame_ny, frame_nx)`` frame starting at
        frame pixel ``(y0, x0)``: the pixel map is on the frame, and each window pixel
        receives exactly what the same frame pixel receives from the same input pixels.
        Default: the outputs are the frame.
    shrunk : bool
        ``xmin, xmax, ymin, ymax`` are already what drizzle's ``shrink_image_section``
        makes of the input range (:func:`shrunk_range`): the scan of the map's rows
        for finite values is skipped, so a pixel map that is a file mapped into
        memory is read only where the pass needs it.

    Returns
    -------
    nmiss, nskip : int
        drizzle's counts of input pixels and rows that contributed nothing (with ``visit``
        or ``window``, counted over the scan as drizzle counts them, except that pixels
        outside the visited box are not counted and hits outside the window count as misses).
    box_yx : tuple of int
        ``(y0, y1, x0, x1)``: the output box that received contributions
        (empty when ``y0 >= y1``).

    Raises
    ------
    ValueError
        As drizzle: no valid pixels in the map, a bad ``exptime`` or
        ``wht_scale``, or no pixel scale ratio could be estimated.
    NotImplementedError
        For the ``point`` and ``gaussian`` kernels, or ``pixfrac <= 0.001``.
    """
    if kernel not in _KERNEL_CODE:
        raise NotImplementedError(f"kernel {kernel!r} is not fused (only {', '.join(KERNELS)})")
    if pixfrac <= 0.001:
        raise NotImplementedError("pixfrac <= 0.001: drizzle uses the point kernel")
    if exptime <= 0.0:
        raise ValueError("'exptime' *must* be a strictly positive number.")
    if wht_scale <= 0.0:
        raise ValueError("weight scale must be > 0")
    data = _float_plane(data)
    pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
    if pixmap.ndim != 3 or pixmap.shape[2] != 2:
        raise ValueError("'pixmap' must have shape (ny, nx, 2)")
    in_shape = (int(pixmap.shape[0]), int(pixmap.shape[1]))
    vy0, vy1, vx0, vx1 = (0, in_shape[0], 0, in_shape[1]) if visit is None else (int(v) for v in visit)
    if not (0 <= vy0 < vy1 <= in_shape[0] and 0 <= vx0 < vx1 <= in_shape[1]):
        raise ValueError(f"'visit' box {visit} is not inside the input {in_shape}")
    if data.shape != (vy1 - vy0, vx1 - vx0):
        raise ValueError("'pixmap' shape is not consistent with 'data' shape.")
    for a in (out_img, out_wht):
        if a.dtype != np.float32 or not a.flags.c_contiguous or a.ndim != 2:
            raise ValueError("outputs must be C-contiguous 2D float32 arrays")
    wy0, wx0, frame_ny, frame_nx = (0, 0, *out_img.shape) if window is None else (int(v) for v in window)
    if not (0 <= wy0 and 0 <= wx0 and wy0 + out_img.shape[0] <= frame_ny and wx0 + out_img.shape[1] <= frame_nx):
        raise ValueError(f"output window {window} of shape {out_img.shape} is not inside its frame")
    place = np.array([vy0, vy1 - 1, vx0, vx1 - 1, wy0, wx0, frame_ny, frame_nx], np.int64)
    if shrunk:
        x0, x1, y0, y1 = int(xmin or 0), int(xmax or 0), int(ymin or 0), int(ymax or 0)
    else:
        x0, x1, y0, y1 = shrunk_range(pixmap, xmin, xmax, ymin, ymax)
    iscale32 = np.float32(iscale)
    if not (iscale32 > 0 and np.isfinite(iscale32)):
        raise ValueError("Argument 'iscale' must be positive and finite.")
    psr = np.float32(np.nan if pixel_scale_ratio is None else pixel_scale_ratio)
    if not (np.isnan(psr) or (psr > 0 and np.isfinite(psr))):
        raise ValueError("Argument 'pscale_ratio' must be positive and finite.")
    if in_units != "cps":
        iscale32 = np.float32(iscale32 / np.float32(exptime))
    weights = _float_plane(weight_map) if weight_map is not None else None
    if weights is not None and weights.shape != data.shape:
        raise ValueError("'weight_map' shape is not consistent with 'data' shape.")
    bit = ctx_id % CTX_PLANE_BITS
    ctx_bit = np.int32(np.array(1 << bit, np.int64).astype(np.uint32).view(np.int32))
    dq_in = None
    if dq is not None:
        kind = np.min_scalar_type(dq)
        if kind.kind not in "iu" or kind.itemsize > 4:
            raise TypeError("'dq' must be of an unsigned integer type with itemsize of 4 bytes or less.")
        dq_in = np.ascontiguousarray(dq)
        if out_dq is None:
            raise ValueError("'out_dq' is needed with 'dq'")
    else:
        out_dq = None
    n_extra = len(extra)
    extra_in = None
    sqrt_flags = np.zeros(1, np.bool_)
    own_flags = np.zeros(1, np.bool_)
    if n_extra:
        planes = [_float_plane(e) for e in extra]
        if any(p.shape != data.shape for p in planes):
            raise ValueError("extra planes must have the data's shape")
        if len({p.dtype for p in planes}) > 1:
            planes = [p.astype(np.float64) for p in planes]  # exact: float32 -> float64
        # padded to a multiple of 4 planes: one compiled specialisation per 4, not per count
        extra_in = tuple(planes + planes[:1] * (-n_extra % _EXTRA_BLOCK))
        sqrt_flags = np.array(list(extra_sqrt) or [False] * n_extra, dtype=np.bool_)
        own_flags = np.array(list(extra_own_weight) or [False] * n_extra, dtype=np.bool_)
        if extra_out is None or extra_out.shape != (n_extra, *out_img.shape) or extra_out.dtype != np.float32:
            raise ValueError("'extra_out' must be a float32 array (n_extra, out_ny, out_nx)")
    else:
        extra_out = None
    exp_w = None
    if n_extra and own_flags.any():
        if exp_wht is None:
            raise ValueError("'exp_wht' is needed for planes with their own weight")
        exp_w = exp_wht
    box = np.zeros(4, np.int64)
    pix = float(pixfrac)
    arrays = (pixmap, data, out_img, out_wht, sqrt_flags, own_flags, box, place)
    scalars = (np.float32(wht_scale), iscale32, pix, psr, x0, x1, y0, y1, ctx_bit, n_extra)
    status, nmiss, nskip = KERNEL_PASSES[kernel](
        arrays, scalars, weights, out_ctx, dq_in, out_dq, extra_in, extra_out, exp_w
    )
    if status == _NO_PSCALE:
        raise ValueError("Unable to estimate pscale_ratio")
    if box[0] > box[1]:
        box[:] = 0
    if fill_value is not None and box[0] < box[1]:
        _put_fill(out_img, out_wht, np.float32(fill_value), box)
    return int(nmiss), int(nskip), (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
