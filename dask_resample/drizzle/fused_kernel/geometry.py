"""Per-input-pixel geometry of the fused kernels: footprints, overlaps, polygon clipping, map inversion."""

# The C's ternaries (MAX, MIN, clamps) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import math

import numpy as np

from .common import (
    _APPROX_ZERO,
    _GOLDEN,
    _MAX_INV_ERR,
    _MAX_INV_ITER,
    _VERTEX_ATOL,
    _cmax,
    _cmin,
    _cmod,
    _jit,
    _jit_inline,
)

# --------------------------------------------------------------------------- geometry (per input pixel)


@_jit_inline
def _interpolate_point(pixmap: np.ndarray, x_in: float, y_in: float) -> tuple[bool, float, float]:
    """Bilinear interpolation (extrapolation at the edges) of the pixel map (``interpolate_point``).

    Returns
    -------
    ok, x_out, y_out
        ``ok`` is False when either output coordinate is NaN.
    """
    ny2 = pixmap.shape[0] - 2
    nx2 = pixmap.shape[1] - 2
    i0 = int(x_in)
    j0 = int(y_in)
    if i0 < 0:
        i0 = 0
    elif i0 > nx2:
        i0 = nx2
    if j0 < 0:
        j0 = 0
    elif j0 > ny2:
        j0 = ny2
    x = x_in - i0
    y = y_in - j0
    x1 = 1.0 - x
    y1 = 1.0 - y
    f00 = pixmap[j0, i0, 0]
    g00 = pixmap[j0, i0, 1]
    f10 = pixmap[j0, i0 + 1, 0]
    g10 = pixmap[j0, i0 + 1, 1]
    f01 = pixmap[j0 + 1, i0, 0]
    g01 = pixmap[j0 + 1, i0, 1]
    f11 = pixmap[j0 + 1, i0 + 1, 0]
    g11 = pixmap[j0 + 1, i0 + 1, 1]
    xo = f00 * x1 * y1 + f10 * x * y1 + f01 * x1 * y + f11 * x * y
    yo = g00 * x1 * y1 + g10 * x * y1 + g01 * x1 * y + g11 * x * y
    return not (math.isnan(xo) or math.isnan(yo)), xo, yo


@_jit_inline
def _square_corners(
    pixmap: np.ndarray, i: int, j: int, h: float
) -> tuple[bool, float, float, float, float, float, float, float, float]:
    """Output positions of the corners of input pixel ``(j, i)`` shrunk to half-side ``h``.

    Clockwise in the input grid: ``(-h, +h), (+h, +h), (+h, -h), (-h, -h)`` in
    ``(x, y)``. Inside the map, ``interpolate_four_points`` (nine map values,
    pre-weighted); on its outer two rows and columns, ``interpolate_point`` per
    corner, as ``do_kernel_square``.

    Returns
    -------
    ok, x0, x1, x2, x3, y0, y1, y2, y3
        ``ok`` is False when any corner is NaN.
    """
    map_ny = pixmap.shape[0]
    map_nx = pixmap.shape[1]
    if i > 0 and i < map_nx - 2 and j > 0 and j < map_ny - 2:
        ic = i - 1
        jc = j - 1
        hh = h * h
        h1h = (1 - h) * h
        h11 = (1 - h) * (1 - h)
        # f[a][b]: map value at x = ic + a, y = jc + b, times its factor
        f00 = pixmap[jc, ic, 0] * hh
        g00 = pixmap[jc, ic, 1] * hh
        f10 = pixmap[jc, ic + 1, 0] * h1h
        g10 = pixmap[jc, ic + 1, 1] * h1h
        f20 = pixmap[jc, ic + 2, 0] * hh
        g20 = pixmap[jc, ic + 2, 1] * hh
        f01 = pixmap[jc + 1, ic, 0] * h1h
        g01 = pixmap[jc + 1, ic, 1] * h1h
        f11 = pixmap[jc + 1, ic + 1, 0] * h11
        g11 = pixmap[jc + 1, ic + 1, 1] * h11
        f21 = pixmap[jc + 1, ic + 2, 0] * h1h
        g21 = pixmap[jc + 1, ic + 2, 1] * h1h
        f02 = pixmap[jc + 2, ic, 0] * hh
        g02 = pixmap[jc + 2, ic, 1] * hh
        f12 = pixmap[jc + 2, ic + 1, 0] * h1h
        g12 = pixmap[jc + 2, ic + 1, 1] * h1h
        f22 = pixmap[jc + 2, ic + 2, 0] * hh
        g22 = pixmap[jc + 2, ic + 2, 1] * hh
        x0 = f01 + f11 + f02 + f12
        y0 = g01 + g11 + g02 + g12
        x1 = f11 + f21 + f12 + f22
        y1 = g11 + g21 + g12 + g22
        x2 = f10 + f20 + f11 + f21
        y2 = g10 + g20 + g11 + g21
        x3 = f00 + f10 + f01 + f11
        y3 = g00 + g10 + g01 + g11
        ok = not (
            math.isnan(x0)
            or math.isnan(y0)
            or math.isnan(x1)
            or math.isnan(y1)
            or math.isnan(x2)
            or math.isnan(y2)
            or math.isnan(x3)
            or math.isnan(y3)
        )
        return ok, x0, x1, x2, x3, y0, y1, y2, y3
    xl = i - h
    xr = i + h
    yt = j + h
    yb = j - h
    ok0, x0, y0 = _interpolate_point(pixmap, xl, yt)
    if not ok0:
        return False, x0, x0, x0, x0, y0, y0, y0, y0
    ok1, x1, y1 = _interpolate_point(pixmap, xr, yt)
    if not ok1:
        return False, x0, x1, x1, x1, y0, y1, y1, y1
    ok2, x2, y2 = _interpolate_point(pixmap, xr, yb)
    if not ok2:
        return False, x0, x1, x2, x2, y0, y1, y2, y2
    ok3, x3, y3 = _interpolate_point(pixmap, xl, yb)
    return ok3, x0, x1, x2, x3, y0, y1, y2, y3


@_jit_inline
def _sgarea(x1: float, y1: float, x2: float, y2: float) -> float:
    """Signed area under segment ``(x1, y1)-(x2, y2)`` inside the unit square at the origin (``sgarea``)."""
    dx = x2 - x1
    dy = y2 - y1
    if dx == 0:
        return 0.0
    if dx < 0:
        sgn_dx = -1.0
        xlo = x2
        xhi = x1
    else:
        sgn_dx = 1.0
        xlo = x1
        xhi = x2
    if xlo >= 1.0 or xhi <= 0.0:
        return 0.0
    xlo = _cmax(xlo, 0.0)
    xhi = _cmin(xhi, 1.0)
    slope = dy / dx
    ylo = y1 + slope * (xlo - x1)
    yhi = y1 + slope * (xhi - x1)
    if ylo <= 0.0 and yhi <= 0.0:
        return 0.0
    if ylo >= 1.0 and yhi >= 1.0:
        return sgn_dx * (xhi - xlo)
    det = x1 * y2 - y1 * x2
    if ylo < 0.0:
        ylo = 0.0
        xlo = det / dy
    if yhi < 0.0:
        yhi = 0.0
        xhi = det / dy
    if ylo <= 1.0:
        if yhi <= 1.0:
            return sgn_dx * 0.5 * (xhi - xlo) * (yhi + ylo)
        xtop = (dx + det) / dy
        return sgn_dx * (0.5 * (xtop - xlo) * (1.0 + ylo) + xhi - xtop)
    xtop = (dx + det) / dy
    return sgn_dx * (0.5 * (xhi - xtop) * (1.0 + yhi) + xtop - xlo)


@_jit_inline
def _boxer(
    ii: float,
    jj: float,
    x0: float,
    x1: float,
    x2: float,
    x3: float,
    y0: float,
    y1: float,
    y2: float,
    y3: float,
) -> float:
    """Signed overlap of quadrilateral ``(x, y)`` with output pixel ``(jj, ii)`` (``boxer``)."""
    is_ = ii - 0.5
    js = jj - 0.5
    px0 = x0 - is_
    px1 = x1 - is_
    px2 = x2 - is_
    px3 = x3 - is_
    py0 = y0 - js
    py1 = y1 - js
    py2 = y2 - js
    py3 = y3 - js
    s = 0.0
    s += _sgarea(px0, py0, px1, py1)
    s += _sgarea(px1, py1, px2, py2)
    s += _sgarea(px2, py2, px3, py3)
    s += _sgarea(px3, py3, px0, py0)
    return s


@_jit_inline
def _turbo_box(ox: float, oy: float, pfo: float) -> tuple[float, float, float, float]:
    """The turbo kernel's axis-aligned box ``(x_lo, x_hi, y_lo, y_hi)`` around ``(ox, oy)``."""
    return ox - pfo, ox + pfo, oy - pfo, oy + pfo


@_jit_inline
def _over(ii: int, jj: int, xmin: float, xmax: float, ymin: float, ymax: float) -> float:
    """Overlap of an axis-aligned box with output pixel ``(jj, ii)`` (``over``)."""
    dx = _cmin(xmax, float(ii) + 0.5) - _cmax(xmin, float(ii) - 0.5)
    dy = _cmin(ymax, float(jj) + 0.5) - _cmax(ymin, float(jj) - 0.5)
    if dx > 0.0 and dy > 0.0:
        return dx * dy
    return 0.0


# --------------------------------------------------------------------------- input range and scanner (per call)


@_jit
def _shrink_image_section(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int
) -> tuple[bool, int, int, int, int]:
    """Tightest box with a finite map value on each edge (``shrink_image_section``).

    Returns
    -------
    ok, xmin, xmax, ymin, ymax
        ``ok`` is False with fewer than two valid columns or rows.
    """
    imin = xmax
    jmin = ymax
    for j in range(ymin, ymax + 1):
        for i in range(xmin, xmax + 1):
            if not (math.isnan(pixmap[j, i, 0]) or math.isnan(pixmap[j, i, 1])):
                if i < imin:
                    imin = i
                if j < jmin:
                    jmin = j
                break
    imax = imin
    jmax = jmin
    for j in range(ymax, ymin - 1, -1):
        for i in range(xmax, xmin - 1, -1):
            if not (math.isnan(pixmap[j, i, 0]) or math.isnan(pixmap[j, i, 1])):
                if i > imax:
                    imax = i
                if j > jmax:
                    jmax = j
                break
    return not (imin >= imax or jmin >= jmax), imin, imax, jmin, jmax


@_jit
def _area(ax: float, ay: float, bx: float, by: float) -> float:
    """z component of ``a x b``."""
    return ax * by - ay * bx


@_jit
def _orient_ccw(v: np.ndarray, n: int) -> None:
    """Reverse polygon ``v[:n]`` in place if it is clockwise (``orient_ccw``)."""
    if n < 3:
        return
    cx = 0.0
    cy = 0.0
    for k in range(n):
        cx += v[k, 0]
        cy += v[k, 1]
    cx /= n
    cy /= n
    if _area(v[0, 0] - cx, v[0, 1] - cy, v[1, 0] - cx, v[1, 1] - cy) >= 0.0:
        return
    for k in range(n // 2):
        m = n - 1 - k
        tx = v[k, 0]
        ty = v[k, 1]
        v[k, 0] = v[m, 0]
        v[k, 1] = v[m, 1]
        v[m, 0] = tx
        v[m, 1] = ty


@_jit
def _append_vertex(v: np.ndarray, n: int, x: float, y: float) -> int:
    """Append a vertex unless it repeats the last or the first (``append_vertex``); new count."""
    if n > 0 and abs(v[n - 1, 0] - x) < _VERTEX_ATOL and abs(v[n - 1, 1] - y) < _VERTEX_ATOL:
        return n
    if n > 0 and abs(v[0, 0] - x) < _VERTEX_ATOL and abs(v[0, 1] - y) < _VERTEX_ATOL:
        return n
    if n >= v.shape[0]:
        return n
    v[n, 0] = x
    v[n, 1] = y
    return n + 1


@_jit
def _simplify_polygon(v: np.ndarray, n: int) -> int:
    """Drop vertices on the line through their neighbours (``simplify_polygon``); new count."""
    if n < 3:
        return n
    hull = np.empty_like(v)
    nh = 0
    p_ = n - 1
    p = 0
    pn = 1
    for k in range(n):
        dpx = v[pn, 0] - v[p_, 0]
        dpy = v[pn, 1] - v[p_, 1]
        dqx = v[p, 0] - v[p_, 0]
        dqy = v[p, 1] - v[p_, 1]
        if abs(_area(dpx, dpy, dqx, dqy)) > _APPROX_ZERO and math.sqrt(dpx * dpx + dpy * dpy) > _VERTEX_ATOL:
            hull[nh, 0] = v[p, 0]
            hull[nh, 1] = v[p, 1]
            nh += 1
        p_ = p
        p = pn
        pn = _cmod(2 + k, n)
    for k in range(nh):
        v[k, 0] = hull[k, 0]
        v[k, 1] = hull[k, 1]
    return nh


@_jit
def _in_half_plane(ptx: float, pty: float, v_x: float, v_y: float, vx: float, vy: float) -> bool:
    """``is_point_strictly_in_hp(pt, v_, v)``."""
    return (_area(vx, vy, ptx, pty) - _area(v_x, v_y, ptx, pty) - _area(vx, vy, v_x, v_y)) > 0.0


@_jit
def _clip_polygon_to_window(p: np.ndarray, np_: int, wnd: np.ndarray, nw: int) -> tuple[np.ndarray, int, bool]:
    """Sutherland-Hodgman clip of polygon ``p`` by convex ``wnd`` (``clip_polygon_to_window``).

    Both inputs are oriented counter-clockwise in place first, as in the C.

    Returns
    -------
    vertices, count, failed
    """
    if np_ < 3 or nw < 3:
        return p, 0, True
    _orient_ccw(p, np_)
    _orient_ccw(wnd, nw)
    buf_a = p.copy()
    n_a = np_
    buf_b = np.empty_like(p)
    n_b = 0
    # ppin/ppout swap each window edge; start: ppin = b, ppout = a
    pin = buf_b
    n_in = n_b
    pout = buf_a
    n_out = n_a
    wp = nw - 1
    for k in range(nw):
        wv = k
        dwx = wnd[wv, 0] - wnd[wp, 0]
        dwy = wnd[wv, 1] - wnd[wp, 1]
        pin, pout = pout, pin
        n_in = n_out
        n_out = 0
        if n_in > 0:
            pp = n_in - 1
            for j in range(n_in):
                pv = j
                dpx = pin[pv, 0] - pin[pp, 0]
                dpy = pin[pv, 1] - pin[pp, 1]
                v1_inside = _in_half_plane(wnd[wp, 0], wnd[wp, 1], wnd[wv, 0], wnd[wv, 1], pin[pp, 0], pin[pp, 1])
                v2_inside = _in_half_plane(wnd[wp, 0], wnd[wp, 1], wnd[wv, 0], wnd[wv, 1], pin[pv, 0], pin[pv, 1])
                if v2_inside != v1_inside:
                    d = _area(dpx, dpy, dwx, dwy)
                    app_ = _area(pin[pv, 0], pin[pv, 1], pin[pp, 0], pin[pp, 1])
                    aww_ = _area(wnd[wv, 0], wnd[wv, 1], wnd[wp, 0], wnd[wp, 1])
                    vix = (app_ * dwx - aww_ * dpx) / d
                    viy = (app_ * dwy - aww_ * dpy) / d
                    if math.isfinite(vix) and math.isfinite(viy):
                        n_out = _append_vertex(pout, n_out, vix, viy)
                    if v2_inside:
                        n_out = _append_vertex(pout, n_out, pin[pv, 0], pin[pv, 1])
                elif v1_inside:
                    n_out = _append_vertex(pout, n_out, pin[pv, 0], pin[pv, 1])
                pp = pv
        wp = wv
    _orient_ccw(pout, n_out)
    n_out = _simplify_polygon(pout, n_out)
    return pout.copy(), n_out, False


@_jit_inline
def _squared_distance(pixmap: np.ndarray, x_in: float, y_in: float, x_out: float, y_out: float) -> tuple[bool, float]:
    """Squared distance from ``(x_out, y_out)`` to where input ``(x_in, y_in)`` maps (``invert_pixmap``)."""
    ok, xo, yo = _interpolate_point(pixmap, x_in, y_in)
    if not ok:
        return False, 0.0
    ex = xo - x_out
    ey = yo - y_out
    return True, ex * ex + ey * ey


@_jit
def _invert_pixmap(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int, x_out: float, y_out: float
) -> tuple[bool, float, float]:
    """Input position of output point ``(x_out, y_out)`` by golden-section search (``invert_pixmap``)."""
    x_lo = float(xmin) - 0.5
    x_hi = float(xmax) + 0.5
    y_lo = float(ymin) - 0.5
    y_hi = float(ymax) + 0.5
    dx = x_hi - x_lo
    dy = y_hi - y_lo
    niter = 0
    while (dx > _MAX_INV_ERR or dy > _MAX_INV_ERR) and niter < _MAX_INV_ITER:
        niter += 1
        x1 = x_hi - _GOLDEN * dx
        x2 = x_lo + _GOLDEN * dx
        y1 = y_hi - _GOLDEN * dy
        y2 = y_lo + _GOLDEN * dy
        ok, d11 = _squared_distance(pixmap, x1, y1, x_out, y_out)
        if not ok:
            return False, 0.0, 0.0
        ok, d12 = _squared_distance(pixmap, x1, y2, x_out, y_out)
        if not ok:
            return False, 0.0, 0.0
        ok, d21 = _squared_distance(pixmap, x2, y1, x_out, y_out)
        if not ok:
            return False, 0.0, 0.0
        ok, d22 = _squared_distance(pixmap, x2, y2, x_out, y_out)
        if not ok:
            return False, 0.0, 0.0
        if d11 < d12 and d11 < d21 and d11 < d22:
            x_hi = x2
            y_hi = y2
        elif d12 < d11 and d12 < d21 and d12 < d22:
            x_hi = x2
            y_lo = y1
        elif d21 < d11 and d21 < d12 and d21 < d22:
            x_lo = x1
            y_hi = y2
        else:
            x_lo = x1
            y_lo = y1
        dx = x_hi - x_lo
        dy = y_hi - y_lo
    x_in = 0.5 * (x_lo + x_hi)
    y_in = 0.5 * (y_lo + y_hi)
    return niter != _MAX_INV_ITER, x_in, y_in
