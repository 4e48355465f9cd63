"""The head of an input WCS as a small program of arrays, for a compiled evaluation.

The head of an input (:func:`dask_resample.geometry.pixmap.recognise_input`) is the
astropy model that takes detector pixels ``(x, y)`` to the plane (or sphere)
where its sky part begins: distortion polynomials, shifts, scales, mappings,
affine transformations, the velocity-aberration scale... This module translates
such a model, by its model types only, into a :class:`HeadProgram`: a list of
operations on numbered registers, each with its coefficients, that
:mod:`dask_resample.geometry.pixmap_compiled` evaluates with the arithmetic of astropy's
own ``evaluate`` methods, element for element:

=======================  ====================================================
model                    operation
=======================  ====================================================
``Shift``                ``x + offset``
``Scale``, ``Multiply``  ``factor * x``
``Polynomial1D``         astropy's Horner scheme (``c_k + r * x``)
``Polynomial2D``         astropy's multivariate Horner scheme: the steps of
                         ``multivariate_horner`` in ``invlex`` order, each an
                         ``x`` step (``r1 = x * (r0 + r1)``) or a ``y`` step
                         (``r2 = y * (r0 + r1 + r2)``, ``r1 = 0``)
``AffineTransformation2D``, ``Rotation2D``
                         ``m00 * x + m01 * y + t0`` (astropy forms it with
                         ``numpy.dot``, whose summation order and FMA use are
                         BLAS's: the one operation that may differ from astropy
                         in the last bit)
``Mapping``, ``Identity``
                         no operation: the registers are renamed
``a & b``                ``a`` on the first inputs, ``b`` on the rest
``a | b``                ``b`` on the outputs of ``a``
``a + b`` (``-``, ``*``, ``/``)
                         both on the same inputs, then element-wise
=======================  ====================================================

Anything else (another model type or subclass, parameters with units, model
sets, ``fix_inputs``...) gives ``None``: the
caller evaluates the head with astropy as it is. Registers are assigned once
(static single assignment), so no operation overwrites its own inputs.

This module needs numpy and astropy only; the evaluation needs numba.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OP_ADD",
    "OP_AFFINE",
    "OP_DIV",
    "OP_MUL",
    "OP_POLY1D",
    "OP_POLY2D",
    "OP_SCALE",
    "OP_SHIFT",
    "OP_SUB",
    "HeadProgram",
    "compile_head",
]

# operation codes (column OP of HeadProgram.ops)
OP_SHIFT = 0  # r[out0] = r[in0] + c[p]
OP_SCALE = 1  # r[out0] = c[p] * r[in0]
OP_AFFINE = 2  # r[out0] = c[p] r[in0] + c[p+1] r[in1] + c[p+4]; r[out1] = c[p+2] r[in0] + c[p+3] r[in1] + c[p+5]
OP_POLY1D = 3  # r[out0] = Horner over c[p : p+n] (c0 first) in r[in0]
OP_POLY2D = 4  # r[out0] = multivariate Horner over c[p : p+n] (invlex order), y steps at flags[q : q+n-1];
#               column V: the degree when the steps are those of a Polynomial2D of that degree (a compiled
#               variant with the steps unrolled), 0 otherwise
OP_ADD = 5  # r[out0] = r[in0] + r[in1]
OP_SUB = 6  # r[out0] = r[in0] - r[in1]
OP_MUL = 7  # r[out0] = r[in0] * r[in1]
OP_DIV = 8  # r[out0] = r[in0] / r[in1]

#: Columns of :attr:`HeadProgram.ops`.
OP, OUT0, OUT1, IN0, IN1, P, N, Q, V = range(9)

#: Highest Polynomial2D degree with an unrolled compiled variant (column ``V``).
MAX_UNROLLED_DEGREE = 6

_ARITHMETIC = {"+": OP_ADD, "-": OP_SUB, "*": OP_MUL, "/": OP_DIV}


@dataclass(frozen=True)
class HeadProgram:
    """A head model as operations on registers.

    Registers ``0`` and ``1`` hold the input pixel ``(x, y)``; every operation
    writes registers no earlier operation wrote.

    Attributes
    ----------
    ops : numpy.ndarray
        ``(n_ops, 9)`` int64 rows ``(op, out0, out1, in0, in1, p, n, q, v)``:
        the operation code, output and input registers (``-1`` where unused),
        the first coefficient ``p`` in :attr:`coeffs`, a count ``n``
        (coefficients of a polynomial), the first step flag ``q`` in
        :attr:`flags` and a variant ``v`` (a 2-D polynomial's degree when its
        steps are the standard ones and it has an unrolled variant, else 0).
    coeffs : numpy.ndarray
        float64 coefficients of all operations.
    flags : numpy.ndarray
        int64 step kinds of the 2-D polynomials (``1``: a ``y`` step).
    n_registers : int
        Registers used (inputs included).
    outputs : tuple of int
        Registers holding the head's two outputs ``(a, b)``.
    """

    ops: np.ndarray
    coeffs: np.ndarray
    flags: np.ndarray
    n_registers: int
    outputs: tuple[int, int]


class _Unsupported(Exception):
    """A model the translation does not know (the head stays with astropy)."""


class _Builder:
    """Collects operations while a model tree is walked."""

    def __init__(self) -> None:
        self.ops: list[list[int]] = []
        self.coeffs: list[float] = []
        self.flags: list[int] = []
        self.n_registers = 2

    def emit(
        self,
        op: int,
        ins: tuple[int, ...],
        n_out: int,
        coeffs: Sequence[float] = (),
        flags: Sequence[int] = (),
        variant: int = 0,
    ) -> list[int]:
        outs = list(range(self.n_registers, self.n_registers + n_out))
        self.n_registers += n_out
        row = [
            op,
            outs[0],
            outs[1] if n_out > 1 else -1,
            ins[0],
            ins[1] if len(ins) > 1 else -1,
            len(self.coeffs),
            len(coeffs),
            len(self.flags),
            variant,
        ]
        self.coeffs.extend(float(c) for c in coeffs)
        self.flags.extend(int(f) for f in flags)
        self.ops.append(row)
        return outs


def _scalar(model: Any, name: str) -> float:
    value = np.asarray(getattr(model, name).value, dtype=np.float64)
    if value.size != 1:
        raise _Unsupported(f"{type(model).__name__}.{name} is not a scalar")
    return float(value.reshape(()))


def _check_plain(model: Any) -> None:
    """Refuse model sets and parameters with units."""
    if len(model) != 1:
        raise _Unsupported("model set")
    for name in model.param_names:
        if getattr(model, name).unit is not None:
            raise _Unsupported(f"{type(model).__name__}.{name} has a unit")


def _matrix_of(model: Any) -> np.ndarray:
    """2x2 matrix of a linear 2-D model, probed exactly on the unit vectors (no rounding)."""
    ex = model(1.0, 0.0)
    ey = model(0.0, 1.0)
    return np.array(
        [[float(np.ravel(ex[0])[0]), float(np.ravel(ey[0])[0])], [float(np.ravel(ex[1])[0]), float(np.ravel(ey[1])[0])]]
    )


def standard_steps(degree: int) -> list[int]:
    """Step kinds (1: a ``y`` step) of astropy's ``multivariate_horner`` for a ``Polynomial2D``.

    In ``invlex`` order the coefficients come in groups of one ``y`` power, the
    ``g``-th group after the first with ``g + 1`` terms: one ``y`` step then
    ``g`` ``x`` steps. :func:`dask_resample.geometry.pixmap_compiled._horner2d` unrolls
    exactly these.
    """
    steps: list[int] = []
    for g in range(1, degree + 1):
        steps += [1] + [0] * g
    return steps


def _domain_map(domain: Any, window: Any, reg: int, b: _Builder) -> int:
    """A polynomial's domain -> window map (astropy's ``poly_map_domain``: ``off + scl * x``).

    The default domain and window ``(-1, 1)`` map ``x`` to ``0.0 + 1.0 * x``,
    which is ``x``: no operation then.
    """
    if domain is None:
        return reg
    from astropy.modeling.polynomial import poly_map_domain

    probe = poly_map_domain(np.array([0.0, 1.0]), domain, window)  # (off, off + scl)
    d = np.array(domain, dtype=np.float64)
    w = np.array(window, dtype=np.float64)
    scl = (w[1] - w[0]) / (d[1] - d[0])
    off = (w[0] * d[1] - w[1] * d[0]) / (d[1] - d[0])
    if float(probe[0]) != off or float(probe[1]) != off + scl:
        raise _Unsupported("polynomial domain map")
    if scl == 1.0 and off == 0.0:
        return reg
    scaled = b.emit(OP_SCALE, (reg,), 1, [scl])[0]
    return b.emit(OP_SHIFT, (scaled,), 1, [off])[0]


def _leaf(model: Any, ins: list[int], b: _Builder) -> list[int]:
    """Operations of one non-compound model on registers ``ins``."""
    from astropy.modeling import models as m

    kind = type(model)
    if kind is m.Mapping:
        if model.n_inputs != len(ins):
            raise _Unsupported("Mapping inputs")
        return [ins[k] for k in model.mapping]
    if kind is m.Identity:
        return list(ins)
    _check_plain(model)
    if kind is m.Shift:
        return b.emit(OP_SHIFT, (ins[0],), 1, [_scalar(model, "offset")])
    if kind is m.Scale or kind is m.Multiply:
        return b.emit(OP_SCALE, (ins[0],), 1, [_scalar(model, "factor")])
    if kind is m.Polynomial1D:
        x = _domain_map(model.domain, model.window, ins[0], b)
        coeffs = [_scalar(model, name) for name in model.param_names]
        return b.emit(OP_POLY1D, (x,), 1, coeffs)
    if kind is m.Polynomial2D:
        x = _domain_map(model.x_domain, model.x_window, ins[0], b)
        y = _domain_map(model.y_domain, model.y_window, ins[1], b)
        values = [_scalar(model, name) for name in model.param_names]
        coeffs = [float(c) for c in model.invlex_coeff(values)]
        alpha = np.asarray(model._invlex())
        y_steps = (np.diff(alpha, axis=0)[:, 1] != 0).astype(int).tolist() if len(alpha) > 1 else []
        if len(coeffs) != len(y_steps) + 1:
            raise _Unsupported("Polynomial2D coefficient layout")
        degree = int(model.degree)
        variant = degree if 1 <= degree <= MAX_UNROLLED_DEGREE and y_steps == standard_steps(degree) else 0
        return b.emit(OP_POLY2D, (x, y), 1, coeffs, y_steps, variant)
    if kind is m.AffineTransformation2D:
        matrix = np.asarray(model.matrix.value, np.float64)
        translation = np.asarray(model.translation.value, np.float64).ravel()
        if matrix.shape != (2, 2) or translation.shape != (2,):
            raise _Unsupported("AffineTransformation2D shape")
        return b.emit(OP_AFFINE, (ins[0], ins[1]), 2, [*matrix.ravel(), *translation])
    if kind is m.Rotation2D:
        return b.emit(OP_AFFINE, (ins[0], ins[1]), 2, [*_matrix_of(model).ravel(), 0.0, 0.0])
    raise _Unsupported(kind.__name__)


def _walk(model: Any, ins: list[int], b: _Builder) -> list[int]:
    from astropy.modeling.core import CompoundModel

    if model.n_inputs != len(ins):
        raise _Unsupported("inputs do not match")
    if not isinstance(model, CompoundModel):
        outs = _leaf(model, ins, b)
    elif model.op == "|":
        outs = _walk(model.right, _walk(model.left, ins, b), b)
    elif model.op == "&":
        k = model.left.n_inputs
        outs = _walk(model.left, ins[:k], b) + _walk(model.right, ins[k:], b)
    elif model.op in _ARITHMETIC:
        left, right = _walk(model.left, ins, b), _walk(model.right, ins, b)
        if len(left) != len(right):
            raise _Unsupported("arithmetic on models with different outputs")
        outs = [b.emit(_ARITHMETIC[model.op], (lo, ro), 1)[0] for lo, ro in zip(left, right, strict=True)]
    else:
        raise _Unsupported(f"operator {model.op!r}")
    if len(outs) != model.n_outputs:
        raise _Unsupported("outputs do not match")
    return outs


def compile_head(models: list[Any]) -> HeadProgram | None:
    """Translate a head, given as the models of its ``|`` chain, into a program.

    Parameters
    ----------
    models : list of astropy.modeling.Model
        The head's models in order (``models[0]`` takes the pixel ``(x, y)``).

    Returns
    -------
    HeadProgram or None
        ``None`` when some model is not one the translation knows, or the
        head does not take two inputs to two outputs.
    """
    b = _Builder()
    regs = [0, 1]
    try:
        for model in models:
            regs = _walk(model, regs, b)
    except _Unsupported:
        return None
    if len(regs) != 2:
        return None
    ops = np.array(b.ops, dtype=np.int64).reshape(-1, 9)
    return HeadProgram(
        ops=ops,
        coeffs=np.array(b.coeffs, dtype=np.float64),
        flags=np.array(b.flags, dtype=np.int64),
        n_registers=b.n_registers,
        outputs=(int(regs[0]), int(regs[1])),
    )
