"""Per-tile reduction: exact sums of partials, then the reference's finalisation.

Drizzle keeps a per-pixel running weighted mean ``I <- (I W + d w) / (W + w)``, so
the contributions of disjoint inputs combine as sums::

    S_wd = sum_k I_k W_k        S_w = sum_k W_k        data = S_wd / S_w

Variances follow ``stcal.resample.Resample.resample_variance_arrays``: with
``V_k`` the drizzled variance of input ``k`` and ``w_k = 1 / V_rnoise,k`` (ivm) or
the measurement time (exptime), ``S_vw2 = sum V_k w_k**2`` and ``S_w' = sum w_k``
over pixels where ``V_k`` is finite and non-negative and ``w_k > 0``; then
``var = S_vw2 / S_w'**2 / pixel_scale_ratio**2``. Context bits and DQ combine by OR.

All sums are float64 and are always taken in input order, so a tile's result
does not depend on how many workers ran or in which order tasks finished.

Context follows the local depth: a tile's accumulator holds only the context
planes that its contributors' bits fall in (``AccumulatorSpec.ctx_planes``),
not the mosaic's ``ceil(N / 32)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..optional_module import OptionalModule
from ..params import ResampleParams
from .kernel import TilePartial

__all__ = [
    "AccumulatorSpec",
    "TileAccumulator",
    "accumulate",
    "empty_pixel_values",
    "finalize_tile",
    "merge",
    "reduce_partials",
    "sum_names",
    "warm_up",
]


@dataclass(frozen=True)
class AccumulatorSpec:
    """Shape and content of one tile's accumulator.

    Attributes
    ----------
    y0, x0 : int
        Position of the tile in the mosaic.
    shape_yx : tuple of int
        Tile shape.
    ctx_bit : dict
        ``input index -> context bit`` of the tile's contributors.
    params : ResampleParams
    pixel_scale_ratio : float or None
    """

    y0: int
    x0: int
    shape_yx: tuple[int, int]
    ctx_bit: dict[int, int]
    params: ResampleParams
    pixel_scale_ratio: float | None

    @property
    def ctx_planes(self) -> tuple[int, ...]:
        """Context planes (of the mosaic's ``con``) that the contributors' bits fall in, sorted."""
        return tuple(sorted({bit // 32 for bit in self.ctx_bit.values()})) or (0,)


@dataclass
class TileAccumulator:
    """Running sums of one output tile (float64), context planes and DQ."""

    spec: AccumulatorSpec
    s_wd: np.ndarray
    s_w: np.ndarray
    s_err: np.ndarray | None
    ctx: np.ndarray | None
    dq: np.ndarray | None
    var_s: dict[str, np.ndarray] = field(default_factory=dict)
    var_w: dict[str, np.ndarray] = field(default_factory=dict)
    n_inputs: int = 0
    exptime: np.ndarray | None = None

    @classmethod
    def empty(cls, spec: AccumulatorSpec) -> TileAccumulator:
        """A neutral accumulator (all sums zero, no bits set)."""
        shape = spec.shape_yx
        p = spec.params
        return cls(
            spec=spec,
            s_wd=np.zeros(shape, np.float64),
            s_w=np.zeros(shape, np.float64),
            s_err=np.zeros(shape, np.float64) if p.compute_err == "driz_err" else None,
            ctx=np.zeros((len(spec.ctx_planes), *shape), np.int32) if p.enable_ctx else None,
            dq=np.zeros(shape, np.uint32) if p.propagate_dq else None,
            var_s={n: np.zeros(shape, np.float64) for n in p.variance_names} if p.enable_var else {},
            var_w={n: np.zeros(shape, np.float64) for n in p.variance_names} if p.enable_var else {},
            exptime=np.zeros(shape, np.float64) if p.compute_exptime else None,
        )

    def sums(self) -> dict[str, np.ndarray]:
        """The float64 running sums by name (:func:`sum_names`): with ``ctx`` and ``dq``, the whole state.

        ``ctx`` and ``dq`` are kept by the mosaic's own ``con`` and ``dq`` arrays
        (:func:`finalize_tile` writes them unchanged), so they are not here.
        """
        out = {"s_wd": self.s_wd, "s_w": self.s_w}
        if self.s_err is not None:
            out["s_err"] = self.s_err
        for name in self.var_s:
            out[f"{name}_sum"] = self.var_s[name]
            out[f"{name}_weight"] = self.var_w[name]
        if self.exptime is not None:
            out["exptime_sum"] = self.exptime
        return out

    @classmethod
    def from_sums(
        cls,
        spec: AccumulatorSpec,
        sums: dict[str, np.ndarray],
        ctx: np.ndarray | None,
        dq: np.ndarray | None,
    ) -> TileAccumulator:
        """The accumulator whose :meth:`sums`, ``ctx`` and ``dq`` these are (the arrays are taken, not copied).

        Its ``n_inputs`` counts the partials added from here on (0).
        """
        acc = cls.empty(spec)
        acc.s_wd, acc.s_w = sums["s_wd"], sums["s_w"]
        if acc.s_err is not None:
            acc.s_err = sums["s_err"]
        for name in acc.var_s:
            acc.var_s[name] = sums[f"{name}_sum"]
            acc.var_w[name] = sums[f"{name}_weight"]
        if acc.exptime is not None:
            acc.exptime = sums["exptime_sum"]
        if acc.ctx is not None:
            assert ctx is not None and ctx.shape == acc.ctx.shape  # the planes of spec.ctx_planes
            acc.ctx = ctx
        if acc.dq is not None:
            assert dq is not None
            acc.dq = dq
        return acc

    def copy(self) -> TileAccumulator:
        """A deep copy."""

        def c(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a.copy()

        return TileAccumulator(
            self.spec,
            self.s_wd.copy(),
            self.s_w.copy(),
            c(self.s_err),
            c(self.ctx),
            c(self.dq),
            {k: v.copy() for k, v in self.var_s.items()},
            {k: v.copy() for k, v in self.var_w.items()},
            self.n_inputs,
            c(self.exptime),
        )


def accumulate(acc: TileAccumulator, partial: TilePartial | None) -> TileAccumulator:
    """Add one input's partial into ``acc`` in place and return it.

    Parameters
    ----------
    acc : TileAccumulator
    partial : TilePartial or None
        ``None`` (nothing landed) is neutral.

    Returns
    -------
    TileAccumulator
    """
    if partial is None:
        return acc
    spec = acc.spec
    ny, nx = partial.shape_yx
    sy, sx = partial.y0 - spec.y0, partial.x0 - spec.x0
    sl = (slice(sy, sy + ny), slice(sx, sx + nx))
    compiled = _compiled()
    if compiled is not None:  # one pass per plane group, the same sums bit for bit
        compiled.add_weighted(acc.s_wd[sl], acc.s_w[sl], partial.img, partial.wht)
        if acc.s_err is not None and partial.err is not None:
            compiled.add_products(acc.s_err[sl], partial.err, partial.wht)
    else:
        # In place on views of the accumulator, with the operations (and their order) of
        # ``acc[sl] += img * wht``: the same sums bit for bit, without temporaries.
        wht = partial.wht.astype(np.float64)
        term = partial.img.astype(np.float64)
        term *= wht
        view = acc.s_wd[sl]
        view += term
        view = acc.s_w[sl]
        view += wht
        if acc.s_err is not None and partial.err is not None:
            term = partial.err.astype(np.float64)
            term *= wht
            view = acc.s_err[sl]
            view += term
        del wht, term
    if acc.ctx is not None and partial.ctx is not None:
        bit = spec.ctx_bit[partial.index]
        view = acc.ctx[spec.ctx_planes.index(bit // 32)][sl]
        np.bitwise_or(view, np.uint32(1 << (bit % 32)).view(np.int32), out=view, where=partial.ctx)
    if acc.dq is not None and partial.dq is not None:
        view = acc.dq[sl]
        view |= partial.dq
    if acc.var_s:
        _accumulate_variances(acc, partial, sl)
    if acc.exptime is not None and partial.exptime is not None:
        view = acc.exptime[sl]
        view += partial.exptime
    acc.n_inputs += 1
    return acc


def _accumulate_variances(acc: TileAccumulator, partial: TilePartial, sl: tuple[slice, slice]) -> None:
    """Add one partial's drizzled variances, as ``resample_variance_arrays`` does.

    With ``w`` the per-pixel weight (``1 / var_rnoise`` for ivm, the measurement
    time for exptime), each variance ``v`` adds ``(v * w) * w`` to its sum and
    ``w`` to its weight where ``v`` is finite and ``>= 0`` and ``w > 0``.
    """
    shape = partial.shape_yx
    compiled = _compiled()
    if compiled is not None:  # each variance in one pass, the same sums bit for bit
        exptime = acc.spec.params.weight_type == "exptime"
        rn = partial.var.get("var_rnoise")
        if not exptime and rn is None:
            return
        for name, v in partial.var.items():
            if exptime:
                assert partial.tmeasure is not None  # the drizzle task sets it for exptime weights
                compiled.add_variance_constant(acc.var_s[name][sl], acc.var_w[name][sl], v, float(partial.tmeasure))
            else:
                compiled.add_variance_ivm(acc.var_s[name][sl], acc.var_w[name][sl], v, rn)
        return
    if acc.spec.params.weight_type == "exptime":
        assert partial.tmeasure is not None  # the drizzle task sets it for exptime weights
        weight = np.full(shape, float(partial.tmeasure), np.float64)
    else:
        rn = partial.var.get("var_rnoise")
        if rn is None:
            return  # no weight anywhere: nothing is added
        with np.errstate(invalid="ignore"):
            good = (rn > 0) & np.isfinite(rn)
        # the reciprocal in the variance's own precision (float32), as the reference takes it
        weight = np.reciprocal(rn, out=np.zeros(shape, rn.dtype), where=good).astype(np.float64)
    positive = weight > 0
    for name, v in partial.var.items():
        with np.errstate(invalid="ignore"):
            mask = v >= 0
        mask &= np.isfinite(v)
        mask &= positive
        term = v.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            term *= weight
            term *= weight
        view = acc.var_s[name][sl]
        np.add(view, term, out=view, where=mask)
        view = acc.var_w[name][sl]
        np.add(view, weight, out=view, where=mask)


def _compiled() -> Any:
    """The compiled additions (:mod:`.reduce_compiled`), or ``None`` without numba."""
    return _COMPILED.get()


def warm_up() -> None:
    """Load the compiled additions' machine code now (a worker's preparation), where numba is installed."""
    if (compiled := _compiled()) is not None:
        compiled.warm_up()


#: :mod:`.reduce_compiled`, imported on first use (``None`` without numba).
_COMPILED = OptionalModule(".reduce_compiled", __package__)


def merge(a: TileAccumulator, b: TileAccumulator) -> TileAccumulator:
    """Combine two accumulators of the same tile (sums add, bits OR); returns a new one."""
    out = a.copy()
    out.s_wd += b.s_wd
    out.s_w += b.s_w
    if out.s_err is not None:
        out.s_err += b.s_err
    if out.ctx is not None:
        out.ctx |= b.ctx
    if out.dq is not None:
        out.dq |= b.dq
    for name in out.var_s:
        out.var_s[name] += b.var_s[name]
        out.var_w[name] += b.var_w[name]
    if out.exptime is not None:
        out.exptime += b.exptime
    out.n_inputs += b.n_inputs
    return out


def finalize_tile(acc: TileAccumulator) -> dict[str, np.ndarray]:
    """Turn sums into output arrays, in the reference's dtypes.

    Returns
    -------
    dict
        ``data``, ``wht`` (float32), ``con`` (int32, the planes
        ``acc.spec.ctx_planes`` of the mosaic's context), ``var_rnoise``,
        ``var_flat``, ``var_poisson``, ``err``, ``exptime`` (float32), ``dq`` (uint32), as enabled.
    """
    spec = acc.spec
    p = spec.params
    psr = spec.pixel_scale_ratio
    fill = np.float32(p.fill_value)
    covered = acc.s_w != 0
    out: dict[str, np.ndarray] = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out["data"] = _ratio(acc.s_wd, acc.s_w, covered, fill)
        out["wht"] = acc.s_w.astype(np.float32)
        if acc.ctx is not None:
            out["con"] = acc.ctx
        if acc.dq is not None:
            out["dq"] = acc.dq
        finals = {}
        if acc.var_s:
            scaling = 1.0 if psr is None else 1.0 / psr**2
            for name in p.variance_names:
                w = acc.var_w[name]
                ok = w > 0
                scaled = acc.var_s[name] * scaling
                np.divide(scaled, w, out=scaled, where=ok)
                finals[name] = _ratio(scaled, w, ok, np.float32(np.nan))
                del scaled
            if p.enable_var and p.report_var:
                out.update(finals)
        if p.compute_err == "driz_err":
            assert acc.s_err is not None  # allocated for driz_err
            err = _ratio(acc.s_err, acc.s_w, covered, fill)
            out["err"] = (err / (1.0 if psr is None else psr)).astype(np.float32)
        elif p.err_enabled:
            comps = [finals[n] for n in p.variance_names]
            err = np.sqrt(np.nansum(comps, axis=0)).astype(np.float32)
            err[np.all(np.isnan(comps), axis=0)] = np.nan
            out["err"] = err
        if acc.exptime is not None:
            out["exptime"] = acc.exptime.astype(np.float32)
    return out


def _ratio(num: np.ndarray, den: np.ndarray, where: np.ndarray, fill: np.float32) -> np.ndarray:
    """``num / den`` (float64) as float32 where ``where``, else ``fill``."""
    q = np.divide(num, den, out=np.zeros(num.shape, np.float64), where=where)
    return np.where(where, q.astype(np.float32), fill)


def empty_pixel_values(params: ResampleParams, pixel_scale_ratio: float | None) -> dict[str, Any]:
    """Value of every output array at a pixel that no input reaches.

    Derived by finalising an empty one-pixel accumulator, so it is by
    construction what :func:`finalize_tile` writes there (and the reference
    holds there): ``fillval`` for ``data``, ``fillval / pixel_scale_ratio`` for
    a drizzled error, NaN for variances, 0 for weights, context and DQ. The
    store uses these as the arrays' fill values, so tiles that no input
    touches (never written) read exactly as the reference.

    Returns
    -------
    dict
        Array name -> scalar of the array's dtype.
    """
    spec = AccumulatorSpec(y0=0, x0=0, shape_yx=(1, 1), ctx_bit={}, params=params, pixel_scale_ratio=pixel_scale_ratio)
    arrays = finalize_tile(TileAccumulator.empty(spec))
    return {name: a.reshape(-1)[0] for name, a in arrays.items()}


def sum_names(params: ResampleParams) -> list[str]:
    """Names of the running sums an accumulator with ``params`` holds (:meth:`TileAccumulator.sums`)."""
    spec = AccumulatorSpec(y0=0, x0=0, shape_yx=(1, 1), ctx_bit={}, params=params, pixel_scale_ratio=None)
    return list(TileAccumulator.empty(spec).sums())


def output_arrays(params: ResampleParams) -> list[str]:
    """Names of the arrays a mosaic with ``params`` holds."""
    names = ["data", "wht"]
    if params.enable_ctx:
        names.append("con")
    if params.err_enabled:
        names.append("err")
    if params.enable_var and params.report_var:
        names += list(params.variance_names)
    if params.propagate_dq:
        names.append("dq")
    if params.compute_exptime:
        names.append("exptime")
    return names


def reduce_partials(
    spec: AccumulatorSpec, partials: Iterable[TilePartial | None], start: TileAccumulator | None = None
) -> TileAccumulator:
    """Accumulate partials, in the order given, into a new accumulator (or into ``start``, in place).

    ``partials`` may be a generator: each partial is dropped once added, so
    memory holds the accumulator and one partial. ``start`` holds the sums of
    earlier contributors (a living mosaic's kept sums): the result is then,
    bit for bit, that of reducing those contributors followed by ``partials``.
    """
    acc = TileAccumulator.empty(spec) if start is None else start
    for partial in partials:
        accumulate(acc, partial)
    return acc


def _register_sizeof() -> None:
    """Tell Dask how much memory an accumulator holds."""
    try:
        from dask.sizeof import sizeof
    except ImportError:  # pragma: no cover
        return

    @sizeof.register(TileAccumulator)
    def _sizeof_acc(a: TileAccumulator) -> int:
        arrays = [a.s_wd, a.s_w, a.s_err, a.ctx, a.dq, a.exptime, *a.var_s.values(), *a.var_w.values()]
        return int(sum(x.nbytes for x in arrays if x is not None)) + 256


_register_sizeof()
