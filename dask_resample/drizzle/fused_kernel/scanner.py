"""The scan-line geometry of the fused kernels: edges, the image scanner, the pixel scale ratio."""

# The C's ternaries (MAX, MIN, clamps) stay ternaries: min/max differ from them for NaN and signed zeros.
# ruff: noqa: FURB136, PLR1730

from __future__ import annotations

import math

import numpy as np

from .common import _APPROX_ZERO, _MAX_INV_ERR, _VERTEX_ATOL, _c_round, _cmod, _imax, _imin, _jit
from .geometry import _clip_polygon_to_window, _interpolate_point, _invert_pixmap, _orient_ccw

# scanner edges: columns of an edge row
_E_V1X, _E_V1Y, _E_V2X, _E_V2Y, _E_M, _E_C = 0, 1, 2, 3, 4, 5


@_jit
def _init_edge(e: np.ndarray, k: int, v1x: float, v1y: float, v2x: float, v2y: float, position: float) -> None:
    """``init_edge``: slope and the intercept shifted so whole pixels fit inside the edge."""
    e[k, _E_V1X] = v1x
    e[k, _E_V1Y] = v1y
    e[k, _E_V2X] = v2x
    e[k, _E_V2Y] = v2y
    m = (v2x - v1x) / (v2y - v1y)
    b = (v1x * v2y - v1y * v2x) / (v2y - v1y)
    e[k, _E_M] = m
    e[k, _E_C] = b - math.copysign(0.5 + 0.5 * abs(m), position)


@_jit
def _init_scanner(v: np.ndarray, n: int, left: np.ndarray, right: np.ndarray) -> tuple[bool, int, int, float, float]:
    """Split polygon ``v[:n]`` into left and right edge chains (``init_scanner``).

    Returns
    -------
    ok, n_left, n_right, min_y, max_y
    """
    if n < 3:
        return False, 0, 0, 0.0, 0.0
    min_y = v[0, 1]
    min_left = 0
    for k in range(1, n):
        if v[k, 1] < min_y:
            min_left = k
            min_y = v[k, 1]
    i1 = _cmod(min_left - 1, n)
    i2 = _cmod(min_left + 1, n)
    min_right = i1 if v[i1, 1] < v[i2, 1] else i2
    if v[min_right, 1] <= min_y * (1.0 + math.copysign(_VERTEX_ATOL, min_y)):
        if v[min_left, 0] > v[min_right, 0]:
            min_left, min_right = min_right, min_left
    else:
        min_right = min_left
    max_y = v[0, 1]
    max_right = 0
    for k in range(1, n):
        if v[k, 1] > max_y:
            max_right = k
            max_y = v[k, 1]
    i1 = _cmod(max_right - 1, n)
    i2 = _cmod(max_right + 1, n)
    max_left = i1 if v[i1, 1] > v[i2, 1] else i2
    if v[max_left, 1] >= max_y * (1.0 - math.copysign(_VERTEX_ATOL, max_y)):
        if v[max_left, 0] > v[max_right, 0]:
            max_left, max_right = max_right, max_left
    else:
        max_left = max_right
    if max_left > min_left:
        min_left += n
    n_left = min_left - max_left
    for k in range(n_left):
        i1 = _cmod(min_left - k, n)
        i2 = _cmod(i1 - 1, n)
        _init_edge(left, k, v[i1, 0], v[i1, 1], v[i2, 0], v[i2, 1], -1.0)
    if max_right < min_right:
        max_right += n
    n_right = max_right - min_right
    for k in range(n_right):
        i1 = _cmod(min_right + k, n)
        i2 = _cmod(i1 + 1, n)
        _init_edge(right, k, v[i1, 0], v[i1, 1], v[i2, 0], v[i2, 1], 1.0)
    return True, n_left, n_right, min_y, max_y


@_jit
def _init_image_scanner(
    pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int, out_ny: int, out_nx: int
) -> tuple[bool, int, int, np.ndarray, np.ndarray, np.ndarray, float, float, np.ndarray, int]:
    """The input polygon that lands on the output frame, as a row scanner (``init_image_scanner``).

    Returns
    -------
    ok, y_first, y_last, left, right, state, min_y, max_y, polygon, n_vertices
        ``state`` holds the current left and right edge (-1 once the scan ended)
        and the edge counts; ``polygon[:n_vertices]`` is the bounding polygon in
        input coordinates. ``ok`` is False when nothing can be drizzled.
    """
    inpq = np.empty((8, 2))
    inpq[0, 0] = xmin - 0.5
    inpq[0, 1] = ymin - 0.5
    inpq[1, 0] = xmax + 0.5
    inpq[1, 1] = inpq[0, 1]
    inpq[2, 0] = inpq[1, 0]
    inpq[2, 1] = ymax + 0.5
    inpq[3, 0] = inpq[0, 0]
    inpq[3, 1] = inpq[2, 1]
    n_in = 4
    p = np.empty((8, 2))
    valid = True
    for k in range(4):
        ok, xo, yo = _interpolate_point(pixmap, inpq[k, 0], inpq[k, 1])
        if not ok:
            valid = False
            break
        p[k, 0] = xo
        p[k, 1] = yo
    if valid:
        q = np.empty((8, 2))
        q[0, 0] = -0.5
        q[0, 1] = -0.5
        q[1, 0] = out_nx - 0.5
        q[1, 1] = -0.5
        q[2, 0] = out_nx - 0.5
        q[2, 1] = out_ny - 0.5
        q[3, 0] = -0.5
        q[3, 1] = out_ny - 0.5
        pq, n_pq, failed = _clip_polygon_to_window(p, 4, q, 4)
        if not failed:
            for k in range(n_pq):
                ok, xi, yi = _invert_pixmap(pixmap, xmin, xmax, ymin, ymax, pq[k, 0], pq[k, 1])
                if not ok:
                    valid = False
                    break
                inpq[k, 0] = xi
                inpq[k, 1] = yi
            if valid:
                n_in = n_pq
                _orient_ccw(inpq, n_in)
    left = np.zeros((8, 6))
    right = np.zeros((8, 6))
    ok, n_left, n_right, min_y, max_y = _init_scanner(inpq, n_in, left, right)
    state = np.array([0, 0, n_left, n_right], dtype=np.int64)
    y_first = _imax(0, int(min_y + 0.5 + 2.0 * _MAX_INV_ERR))
    y_last = _imin(ymax, int(max_y + 2.0 * _MAX_INV_ERR))
    return ok, y_first, y_last, left, right, state, min_y, max_y, inpq, n_in


@_jit
def _scanline_limits(
    y: int,
    left: np.ndarray,
    right: np.ndarray,
    state: np.ndarray,
    min_y: float,
    max_y: float,
    xmin: int,
    xmax: int,
    ymin: int,
    ymax: int,
) -> tuple[int, int, int]:
    """Columns of input row ``y`` inside the scanner's polygon (``get_scanline_limits``).

    Call with increasing ``y``; ``state`` advances along the edges.

    Returns
    -------
    status, x_first, x_last
        status 0: columns found; 1: the scan ended; 2: the row is outside; 3: empty row.
    """
    x1 = 0
    x2 = 0
    el_max = state[2] - 1
    er_max = state[3] - 1
    if ymax >= ymin and (y < 0 or y > ymax):
        return 2, x1, x2
    pyb = y - 0.5
    pyt = y + 0.5
    if pyt <= min_y or pyb >= max_y + 1:
        return 2, x1, x2
    if state[0] < 0 or state[1] < 0:
        return 1, x1, x2
    while pyb > left[state[0], _E_V2Y]:
        if state[0] == el_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[0] += 1
    while pyb > right[state[1], _E_V2Y]:
        if state[1] == er_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[1] += 1
    xlb = left[state[0], _E_M] * y + left[state[0], _E_C] - _MAX_INV_ERR
    xrb = right[state[1], _E_M] * y + right[state[1], _E_C] + _MAX_INV_ERR
    edge_ymax = left[state[0], _E_V2Y] + 0.5 + _MAX_INV_ERR
    while pyt > edge_ymax:
        if state[0] == el_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[0] += 1
        edge_ymax = left[state[0], _E_V2Y] + 0.5 + _MAX_INV_ERR
    edge_ymax = right[state[1], _E_V2Y] + 0.5 + _MAX_INV_ERR
    while pyt > edge_ymax:
        if state[1] == er_max:
            state[0] = -1
            state[1] = -1
            return 1, x1, x2
        state[1] += 1
        edge_ymax = right[state[1], _E_V2Y] + 0.5 + _MAX_INV_ERR
    xlt = left[state[0], _E_M] * y + left[state[0], _E_C] - _MAX_INV_ERR
    xrt = right[state[1], _E_M] * y + right[state[1], _E_C] + _MAX_INV_ERR
    fxmin = float(xmin)
    fxmax = float(xmax)
    if xmax >= xmin:
        if xlb < fxmin:
            xlb = fxmin
        if xlt < fxmin:
            xlt = fxmin
        if xrb > fxmax:
            xrb = fxmax
        if xrt > fxmax:
            xrt = fxmax
    if xlt >= xrt:
        x1 = int(_c_round(xlb))
        x2 = int(_c_round(xrb))
        if xlb >= xrb:
            return 3, x1, x2
    elif xlb >= xrb:
        x1 = int(_c_round(xlt))
        x2 = int(_c_round(xrt))
    else:
        x1 = int(_c_round(xlb if xlb > xlt else xlt))
        x2 = int(_c_round(xrb if xrb < xrt else xrt))
    return 0, x1, x2


@_jit
def _compute_pscale_ratio(pixmap: np.ndarray, poly: np.ndarray, n: int) -> tuple[bool, np.float32]:
    """Pixel scale ratio at the centroid of the bounding polygon (``compute_pscale_ratio``)."""
    a = 0.0
    j = n - 1
    for k in range(n):
        a += (poly[j, 0] + poly[k, 0]) * (poly[j, 1] - poly[k, 1])
        j = k
    a = 0.5 * a
    if abs(a) < _APPROX_ZERO or n < 3:
        return False, np.float32(0.0)
    sx = 0.0
    sy = 0.0
    j = n - 1
    for k in range(n):
        f = poly[j, 0] * poly[k, 1] - poly[k, 0] * poly[j, 1]
        sx += (poly[j, 0] + poly[k, 0]) * f
        sy += (poly[j, 1] + poly[k, 1]) * f
        j = k
    cx = sx / (6.0 * a)
    cy = sy / (6.0 * a)
    i = int(cx)
    jy = int(cy)
    nx = pixmap.shape[1]
    ny = pixmap.shape[0]
    if nx < 2 or ny < 2:
        return False, np.float32(0.0)
    i = _imax(_imin(i, nx - 2), 0)
    jy = _imax(_imin(jy, ny - 2), 0)
    ox = pixmap[jy, i, 0]
    oy = pixmap[jy, i, 1]
    ox1 = pixmap[jy, i + 1, 0]
    oy1 = pixmap[jy, i + 1, 1]
    ox2 = pixmap[jy + 1, i, 0]
    oy2 = pixmap[jy + 1, i, 1]
    if math.isnan(ox) or math.isnan(oy) or math.isnan(ox1) or math.isnan(oy1) or math.isnan(ox2) or math.isnan(oy2):
        return False, np.float32(0.0)
    cd11 = ox1 - ox
    cd12 = oy1 - oy
    cd21 = ox2 - ox
    cd22 = oy2 - oy
    return True, np.float32(math.sqrt(abs(cd11 * cd22 - cd12 * cd21)))
