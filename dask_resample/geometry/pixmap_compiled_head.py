"""The first part of :mod:`dask_resample.geometry.pixmap_compiled`: an input head's program, compiled.

:func:`evaluate_head` runs a :class:`~dask_resample.geometry.pixmap_program.HeadProgram` (the
input's distortion polynomials, shifts, scales, mappings and affine steps, as arrays) over
chunks of :data:`CHUNK` pixels of a row, with astropy's arithmetic; :func:`_run_program` is the
driver and :func:`_horner2d` the per-pixel polynomial (see the documentation of
:mod:`~dask_resample.geometry.pixmap_compiled`, which adds the sky part and the whole map).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .pixmap_program import (
    IN0,
    IN1,
    OP,
    OP_ADD,
    OP_AFFINE,
    OP_DIV,
    OP_MUL,
    OP_POLY1D,
    OP_POLY2D,
    OP_SCALE,
    OP_SHIFT,
    OP_SUB,
    OUT0,
    OUT1,
    HeadProgram,
    N,
    P,
    Q,
    V,
)

__all__ = ["CHUNK", "evaluate_head"]

#: Pixels of one row evaluated together (the registers are ``CHUNK`` doubles each).
CHUNK = 128

_R0 = 180.0 / math.pi
#: numpy's ``deg2rad`` factor (``x * (NPY_PI / 180.0)``).
_DEG2RAD = math.pi / 180.0

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
_jit_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


# --------------------------------------------------------------------------- head
@_jit_inline
def _horner2d(x: float, y: float, coeffs: np.ndarray, p: int, degree: int) -> float:
    """One pixel of a ``Polynomial2D`` of ``degree`` with the standard steps, as astropy's
    ``multivariate_horner``: coefficients ``coeffs[p:]`` in ``invlex`` order.

    Called with a literal ``degree``, the loops unroll and a loop over pixels
    calling it compiles to SIMD instructions with ``r0, r1, r2`` in registers.
    """
    r0 = coeffs[p]
    zero = r0 * 0.0
    r1 = zero
    r2 = zero
    k = p
    for g in range(1, degree + 1):
        r2 = y * (r0 + r1 + r2)
        r1 = 0.0
        k += 1
        r0 = coeffs[k]
        for _ in range(g):
            r1 = x * (r0 + r1)
            k += 1
            r0 = coeffs[k]
    return r0 + r1 + r2


@_jit_inline
def _poly2d_unrolled(
    variant: int, coeffs: np.ndarray, p: int, x: np.ndarray, y: np.ndarray, out: np.ndarray, n: int
) -> None:
    """``out[i] = _horner2d(x[i], y[i], ...)`` with the degree ``variant`` (1..6) as a literal."""
    if variant == 1:
        for i in range(n):
            out[i] = _horner2d(x[i], y[i], coeffs, p, 1)
    elif variant == 2:
        for i in range(n):
            out[i] = _horner2d(x[i], y[i], coeffs, p, 2)
    elif variant == 3:
        for i in range(n):
            out[i] = _horner2d(x[i], y[i], coeffs, p, 3)
    elif variant == 4:
        for i in range(n):
            out[i] = _horner2d(x[i], y[i], coeffs, p, 4)
    elif variant == 5:
        for i in range(n):
            out[i] = _horner2d(x[i], y[i], coeffs, p, 5)
    else:
        for i in range(n):
            out[i] = _horner2d(x[i], y[i], coeffs, p, 6)


@_jit
def _run_program(ops: np.ndarray, coeffs: np.ndarray, flags: np.ndarray, regs: np.ndarray, n: int) -> None:
    """Run a head program on the first ``n`` entries of each register row.

    Registers ``0`` and ``1`` hold ``x`` and ``y``; the last two rows of
    ``regs`` are the polynomials' scratch (``r1``, ``r2`` of astropy's
    ``multivariate_horner``).
    """
    s1 = regs.shape[0] - 2
    s2 = regs.shape[0] - 1
    for k in range(ops.shape[0]):
        op = ops[k, OP]
        o0 = ops[k, OUT0]
        i0 = ops[k, IN0]
        p = ops[k, P]
        if op == OP_SHIFT:
            c = coeffs[p]
            for i in range(n):
                regs[o0, i] = regs[i0, i] + c
        elif op == OP_SCALE:
            c = coeffs[p]
            for i in range(n):
                regs[o0, i] = c * regs[i0, i]
        elif op == OP_AFFINE:
            o1 = ops[k, OUT1]
            i1 = ops[k, IN1]
            m00, m01, m10, m11 = coeffs[p], coeffs[p + 1], coeffs[p + 2], coeffs[p + 3]
            t0, t1 = coeffs[p + 4], coeffs[p + 5]
            for i in range(n):
                x = regs[i0, i]
                y = regs[i1, i]
                regs[o0, i] = m00 * x + m01 * y + t0 * 1.0
                regs[o1, i] = m10 * x + m11 * y + t1 * 1.0
        elif op == OP_POLY2D and ops[k, V] > 0:
            _poly2d_unrolled(ops[k, V], coeffs, p, regs[i0], regs[ops[k, IN1]], regs[o0], n)
        elif op == OP_POLY2D:
            i1 = ops[k, IN1]
            ncoef = ops[k, N]
            q = ops[k, Q]
            # astropy: r0 = coeffs[0]; r1 = r2 = r0 * 0.0; per step r1 = x * (r0 + r1) or
            # r2 = y * (r0 + r1 + r2), r1 = 0; r0 = next coefficient; result r0 + r1 + r2
            r0 = coeffs[p]
            zero = r0 * 0.0
            for i in range(n):
                regs[s1, i] = zero
                regs[s2, i] = zero
            for s in range(ncoef - 1):
                if flags[q + s] != 0:
                    for i in range(n):
                        regs[s2, i] = regs[i1, i] * (r0 + regs[s1, i] + regs[s2, i])
                        regs[s1, i] = 0.0
                else:
                    for i in range(n):
                        regs[s1, i] = regs[i0, i] * (r0 + regs[s1, i])
                r0 = coeffs[p + s + 1]
            for i in range(n):
                regs[o0, i] = r0 + regs[s1, i] + regs[s2, i]
        elif op == OP_POLY1D:
            ncoef = ops[k, N]
            # astropy's horner: c0 = coeffs[-1]; c0 = coeffs[-i] + c0 * x for i = 2..len
            last = coeffs[p + ncoef - 1]
            for i in range(n):
                regs[o0, i] = last
            for j in range(ncoef - 2, -1, -1):
                c = coeffs[p + j]
                for i in range(n):
                    regs[o0, i] = c + regs[o0, i] * regs[i0, i]
        else:
            i1 = ops[k, IN1]
            if op == OP_ADD:
                for i in range(n):
                    regs[o0, i] = regs[i0, i] + regs[i1, i]
            elif op == OP_SUB:
                for i in range(n):
                    regs[o0, i] = regs[i0, i] - regs[i1, i]
            elif op == OP_MUL:
                for i in range(n):
                    regs[o0, i] = regs[i0, i] * regs[i1, i]
            elif op == OP_DIV:
                for i in range(n):
                    regs[o0, i] = regs[i0, i] / regs[i1, i]


@_jit
def _head_points(
    ops: np.ndarray,
    coeffs: np.ndarray,
    flags: np.ndarray,
    n_registers: int,
    out_a: int,
    out_b: int,
    x: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
) -> None:
    regs = np.empty((n_registers + 2, CHUNK))
    for c0 in range(0, x.size, CHUNK):
        n = min(CHUNK, x.size - c0)
        for i in range(n):
            regs[0, i] = x[c0 + i]
            regs[1, i] = y[c0 + i]
        _run_program(ops, coeffs, flags, regs, n)
        for i in range(n):
            a[c0 + i] = regs[out_a, i]
            b[c0 + i] = regs[out_b, i]


def evaluate_head(program: HeadProgram, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head's outputs ``(a, b)`` at pixels ``(x, y)`` (any shape, broadcast together).

    Parameters
    ----------
    program : HeadProgram
    x, y : numpy.ndarray

    Returns
    -------
    a, b : numpy.ndarray
        float64, the broadcast shape of ``x`` and ``y``.
    """
    xb, yb = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    xf, yf = np.ascontiguousarray(xb).ravel(), np.ascontiguousarray(yb).ravel()
    a, b = np.empty_like(xf), np.empty_like(xf)
    _head_points(
        program.ops,
        program.coeffs,
        program.flags,
        program.n_registers,
        program.outputs[0],
        program.outputs[1],
        xf,
        yf,
        a,
        b,
    )
    return a.reshape(xb.shape), b.reshape(xb.shape)
