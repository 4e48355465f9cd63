"""The Python-side API of the fused kernels: :class:`FusedDrizzle`, :func:`finalize_variances`, :func:`warm_up`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .common import _KERNEL_CODE, CTX_PLANE_BITS, KERNELS
from .once import _fill_value, drizzle_once
from .passes import _put_fill, _variances_stcal

#: The kernels :func:`warm_up` compiles ahead of their first use: the step's default and the fast one.
WARM_KERNELS: tuple[str, ...] = ("square", "turbo")


class FusedDrizzle:
    """Drizzle inputs onto one output frame, each input in a single pass.

    The counterpart of ``drizzle.resample.Drizzle`` (``square``, ``turbo``, ``lanczos2``, ``lanczos3``)
    together with stcal's variance handling: :meth:`add_image` accumulates the
    data, weight, context and DQ as ``Drizzle.add_image`` does, the extra
    ``planes`` as further ``Drizzle`` objects with the same arguments would (a
    drizzled error), and each variance as ``Resample.resample_variance_arrays``
    (see the docstring of :mod:`dask_resample.drizzle.fused_kernel` for the exact math).

    Parameters
    ----------
    out_shape : tuple of int
        ``(ny, nx)`` of the output frame.
    kernel : {"square", "turbo", "lanczos2", "lanczos3"}
        Drizzle kernel.
    fillval : float, str or None
        Value of uncovered data pixels (``None``: NaN), as ``Drizzle``.
    begin_ctx_id, max_ctx_id, disable_ctx
        Context IDs as ``Drizzle`` (bit ``id % 32`` of int32 plane ``id // 32``).
    plane_names : sequence of str
        Extra planes drizzled like the data (their fill value is ``plane_fillval``).
    plane_fillval : float
        Fill value of the extra planes (stcal's drizzled error uses the data's).
    variance_names : sequence of str
        Variance planes, accumulated the stcal way.
    variance_weight : {"ivm", "exptime"}
        stcal's ``weight_type`` for the variance sums (``ivm`` needs
        ``rnoise_name`` among ``variance_names``).
    rnoise_name : str
        The read-noise variance (the ``ivm`` weight).
    accumulate_variances : bool
        False keeps only the last input's drizzled variances
        (:meth:`input_variance`), for callers that combine inputs themselves.
    window : (y0, y1, x0, x1), optional
        Hold only this box of the output frame: every array has the window's shape
        and receives, bit for bit, what the same box of the whole frame would
        (see ``drizzle_once``'s ``window``). Default: the whole frame.
    """

    def __init__(
        self,
        out_shape: tuple[int, int],
        kernel: str = "square",
        fillval: float | str | None = None,
        begin_ctx_id: int = 0,
        max_ctx_id: int | None = None,
        disable_ctx: bool = False,
        plane_names: Sequence[str] = (),
        plane_fillval: float | str | None = None,
        variance_names: Sequence[str] = (),
        variance_weight: str = "ivm",
        rnoise_name: str = "var_rnoise",
        accumulate_variances: bool = True,
        window: tuple[int, int, int, int] | None = None,
    ) -> None:
        if kernel not in _KERNEL_CODE:
            raise NotImplementedError(f"kernel {kernel!r} is not fused (only {', '.join(KERNELS)})")
        if variance_weight not in ("ivm", "exptime"):
            raise ValueError(f"unknown variance weight {variance_weight!r}")
        frame_ny, frame_nx = (int(s) for s in out_shape)
        wy0, wy1, wx0, wx1 = (0, frame_ny, 0, frame_nx) if window is None else (int(v) for v in window)
        if not (0 <= wy0 < wy1 <= frame_ny and 0 <= wx0 < wx1 <= frame_nx):
            raise ValueError(f"window {window} is not inside the frame {out_shape}")
        ny, nx = wy1 - wy0, wx1 - wx0
        self.kernel = kernel
        self.out_shape = (frame_ny, frame_nx)
        #: (y0, x0, frame_ny, frame_nx): where the arrays sit in the frame
        self._window = (wy0, wx0, frame_ny, frame_nx)
        self.window_shape = (ny, nx)
        self._fill = _fill_value(fillval)[1]
        self._plane_fill = _fill_value(plane_fillval)[1]
        self.out_img = np.full((ny, nx), self._fill, np.float32)
        self.out_wht = np.zeros((ny, nx), np.float32)
        self.disable_ctx = disable_ctx
        if disable_ctx:
            self.out_ctx: np.ndarray | None = None
            self._ctx_id: int | None = None
        else:
            if begin_ctx_id < 0:
                raise ValueError("Invalid context image ID")
            max_id = begin_ctx_id if max_ctx_id is None else max_ctx_id
            if max_id < begin_ctx_id:
                raise ValueError("'max_ctx_id' cannot be smaller than 'begin_ctx_id'.")
            self.out_ctx = np.zeros((max_id // CTX_PLANE_BITS + 1, ny, nx), np.int32)
            self._ctx_id = begin_ctx_id
        self.out_dq: np.ndarray | None = None
        self.plane_names = tuple(plane_names)
        self.variance_names = tuple(variance_names)
        self.variance_weight = variance_weight
        self.rnoise_name = rnoise_name
        self.accumulate_variances = accumulate_variances
        n_p, n_v = len(self.plane_names), len(self.variance_names)
        # extra planes: the mean-like planes, then the per-input sqrt(variance) planes
        self._extra_out = np.empty((n_p + n_v, ny, nx), np.float32)
        self._extra_out[:n_p] = self._plane_fill
        self._extra_out[n_p:] = np.nan
        self._exp_wht: np.ndarray | None = None
        # stcal's running sums (only when accumulating)
        n_sum = n_v if accumulate_variances else 0
        self.var_wsum = np.full((n_sum, ny, nx), np.nan, np.float32)
        self.var_wt = np.zeros((n_sum, ny, nx), np.float32)
        self._last_box = (0, 0, 0, 0)
        self._last_counts: np.ndarray | None = None
        self._squared: set[int] = set()  # per-input planes squared by input_variance
        self.ncoadds = 0
        self.total_exptime = 0.0

    @property
    def out_planes(self) -> dict[str, np.ndarray]:
        """The extra planes accumulated like the data, by name."""
        return {n: self._extra_out[k] for k, n in enumerate(self.plane_names)}

    @property
    def ctx_id(self) -> int | None:
        """Context ID of the next input."""
        return self._ctx_id

    def input_variance(self, name: str) -> np.ndarray:
        """The last input's drizzled variance ``(drizzled sqrt(var))**2`` (NaN where it has no weight).

        Only with ``accumulate_variances=False`` (otherwise the per-input planes
        are cleared once added to the sums). The plane is squared in place, so
        no frame is allocated: the result is a view, valid until the next
        :meth:`add_image`.
        """
        if self.accumulate_variances:
            raise RuntimeError("per-input variances are cleared when accumulated")
        k = len(self.plane_names) + self.variance_names.index(name)
        m = self._extra_out[k]
        if k not in self._squared:
            counts = self._last_counts if self._last_counts is not None else self.out_wht
            np.multiply(m, m, out=m)
            m[counts == 0] = np.nan
            self._squared.add(k)
        return m

    def add_image(
        self,
        data: np.ndarray,
        exptime: float,
        pixmap: np.ndarray,
        *,
        planes: Mapping[str, np.ndarray] | None = None,
        variances: Mapping[str, np.ndarray] | None = None,
        dq: np.ndarray | None = None,
        iscale: float = 1.0,
        pixel_scale_ratio: float | None = 1.0,
        weight_map: np.ndarray | None = None,
        wht_scale: float = 1.0,
        pixfrac: float = 1.0,
        in_units: str = "cps",
        xmin: int | None = None,
        xmax: int | None = None,
        ymin: int | None = None,
        ymax: int | None = None,
        tmeasure: float | None = None,
        visit: tuple[int, int, int, int] | None = None,
        shrunk: bool = False,
    ) -> tuple[int, int]:
        """Drizzle one input (data, weight, context, DQ, planes and variances) in one pass.

        Parameters
        ----------
        data, exptime, pixmap, dq, iscale, pixel_scale_ratio, weight_map
            As ``drizzle.resample.Drizzle.add_image``.
        wht_scale, pixfrac, in_units, xmin, xmax, ymin, ymax
            As ``drizzle.resample.Drizzle.add_image``.
        planes : mapping, optional
            Input arrays of ``plane_names`` (all of them).
        variances : mapping, optional
            Input variance arrays of ``variance_names``; a missing or empty one is
            skipped for this input, as stcal does.
        tmeasure : float, optional
            The variance weight for ``variance_weight="exptime"`` (stcal's
            ``get_tmeasure``: measurement time, else exposure time).
        visit : (y0, y1, x0, x1), optional
            Drizzle only this box of input pixels; the input arrays (not ``pixmap``)
            hold exactly it (``drizzle_once``'s ``visit``).
        shrunk : bool
            The input range is already shrunk to a finite map (``drizzle_once``'s ``shrunk``).

        Returns
        -------
        nmiss, nskip : int
            As ``Drizzle.add_image`` (see ``drizzle_once`` with ``visit`` or a window).
        """
        ny, nx = self.window_shape
        n_p = len(self.plane_names)
        if not self.accumulate_variances and self._last_box[0] < self._last_box[1]:
            # the previous input's variance planes and weight: cleared for this one
            y0, y1, x0, x1 = self._last_box
            self._extra_out[n_p:, y0:y1, x0:x1] = np.nan
            if self._exp_wht is not None:
                self._exp_wht[y0:y1, x0:x1] = 0.0
        self._squared.clear()
        if self.disable_ctx:
            ctx_plane = None
            ctx_id = 0
        else:
            assert self.out_ctx is not None and self._ctx_id is not None  # set when ctx is enabled
            ctx_id = self._ctx_id
            plane_no = ctx_id // CTX_PLANE_BITS
            if plane_no >= self.out_ctx.shape[0]:
                grow = np.zeros((plane_no + 1 - self.out_ctx.shape[0], ny, nx), np.int32)
                self.out_ctx = np.concatenate([self.out_ctx, grow])
            ctx_plane = self.out_ctx[plane_no]
            self._ctx_id += 1
        if exptime <= 0.0:
            raise ValueError("'exptime' *must* be a strictly positive number.")
        self.total_exptime += exptime
        if dq is not None and self.out_dq is None:
            self.out_dq = np.zeros((ny, nx), np.uint32)
        planes = dict(planes or {})
        missing = [n for n in self.plane_names if n not in planes]
        if missing:
            raise ValueError(f"planes missing: {missing}")
        var_in: dict[int, np.ndarray] = {}
        for k, name in enumerate(self.variance_names):
            v = (variances or {}).get(name)
            if v is None or np.size(v) == 0:
                continue
            if np.shape(v) != np.shape(data):
                continue  # stcal: "Data shape mismatch ... Skipping"
            var_in[k] = v
        fresh = self.ncoadds == 0  # out_wht is this input's weight alone
        extra = [planes[n] for n in self.plane_names]
        sqrt_flags = [False] * n_p
        own = [False] * n_p
        idx = list(range(n_p))
        for k, v in var_in.items():
            extra.append(v)
            sqrt_flags.append(True)
            own.append(not fresh)
            idx.append(n_p + k)
        # the kernel writes the planes it is given, in order: a view per used plane
        extra_out: np.ndarray | None
        if len(idx) == self._extra_out.shape[0]:
            extra_out = self._extra_out
        else:
            extra_out = np.ascontiguousarray(self._extra_out[idx]) if idx else None
        exp_wht = None
        if any(own):
            if self._exp_wht is None:
                self._exp_wht = np.zeros((ny, nx), np.float32)
            exp_wht = self._exp_wht
        nmiss, nskip, box = drizzle_once(
            self.kernel,
            pixmap,
            data,
            self.out_img,
            self.out_wht,
            exptime=exptime,
            weight_map=weight_map,
            wht_scale=wht_scale,
            pixfrac=pixfrac,
            in_units=in_units,
            iscale=iscale,
            pixel_scale_ratio=pixel_scale_ratio,
            xmin=xmin,
            xmax=xmax,
            ymin=ymin,
            ymax=ymax,
            out_ctx=ctx_plane,
            ctx_id=ctx_id,
            dq=dq,
            out_dq=self.out_dq,
            extra=extra,
            extra_sqrt=sqrt_flags,
            extra_own_weight=own,
            extra_out=extra_out,
            exp_wht=exp_wht,
            fill_value=self._fill,
            visit=visit,
            window=self._window,
            shrunk=shrunk,
        )
        if extra_out is not None and extra_out is not self._extra_out:
            self._extra_out[idx] = extra_out
        self.ncoadds += 1
        if box[0] < box[1] and n_p:
            fb = np.array(box, np.int64)
            for k in range(n_p):
                _put_fill(self._extra_out[k], self.out_wht, np.float32(self._plane_fill), fb)
        counts = exp_wht if exp_wht is not None else self.out_wht
        self._last_counts = counts if not self.accumulate_variances else None
        if var_in and self.accumulate_variances:
            self._add_variances(var_in, box, counts, tmeasure)
        self._last_box = box
        return nmiss, nskip

    def _add_variances(
        self,
        var_in: Mapping[int, np.ndarray],
        box: tuple[int, int, int, int],
        counts: np.ndarray,
        tmeasure: float | None,
    ) -> None:
        """stcal's per-input variance step over ``box``; clears the per-input planes."""
        n_p = len(self.plane_names)
        if box[0] >= box[1]:
            return
        if self.variance_weight == "ivm":
            k_rn = self.variance_names.index(self.rnoise_name) if self.rnoise_name in self.variance_names else -1
            if k_rn < 0 or k_rn not in var_in:
                raise ValueError("ivm variance weights need this input's read-noise variance")
            tm = 0.0
        else:
            k_rn = -1
            if tmeasure is None:
                raise ValueError("variance_weight='exptime' needs tmeasure")
            tm = float(tmeasure)
        used = sorted(var_in)
        planes = self._extra_out[n_p:]
        if len(used) != len(self.variance_names):
            # sums only for the variances this input has (stcal skips the others)
            sub = np.ascontiguousarray(planes[used])
            wsum = np.ascontiguousarray(self.var_wsum[used])
            wt = np.ascontiguousarray(self.var_wt[used])
            rn = used.index(k_rn) if k_rn >= 0 else -1
            _variances_stcal(np.array(box, np.int64), counts.copy(), sub, len(used), rn, tm, wsum, wt, False)
            self.var_wsum[used] = wsum
            self.var_wt[used] = wt
            y0, y1, x0, x1 = box
            planes[:, y0:y1, x0:x1] = np.nan
            if counts is not self.out_wht:
                counts[y0:y1, x0:x1] = 0
            return
        reset = counts is not self.out_wht
        _variances_stcal(
            np.array(box, np.int64), counts, planes, len(used), k_rn, tm, self.var_wsum, self.var_wt, reset
        )
        if not reset:
            y0, y1, x0, x1 = box
            planes[:, y0:y1, x0:x1] = np.nan

    def variances(self, pixel_scale_ratio: float | None, imaging: bool = True) -> dict[str, np.ndarray]:
        """The final variances, as ``Resample.finalize_resample_variance``."""
        return finalize_variances(self.var_wsum, self.var_wt, self.variance_names, pixel_scale_ratio, imaging)


def finalize_variances(
    wsum: np.ndarray, wt: np.ndarray, names: Sequence[str], pixel_scale_ratio: float | None, imaging: bool = True
) -> dict[str, np.ndarray]:
    """``var = wsum * scaling / wt / wt`` in float32, as ``Resample.finalize_resample_variance``.

    Parameters
    ----------
    wsum, wt : numpy.ndarray
        ``(n, ny, nx)`` float32 sums of ``var * W**2`` and of ``W``.
    names : sequence of str
        Names of the ``n`` planes.
    pixel_scale_ratio : float or None
        ``scaling = 1 / pixel_scale_ratio**2`` for imaging, ``pixel_scale_ratio``
        otherwise, 1 for None.
    imaging : bool
        Whether the output WCS is an imaging one.

    Returns
    -------
    dict
        Name to float32 variance (NaN where ``wt == 0``).
    """
    if pixel_scale_ratio is None:
        scaling = 1.0
    elif imaging:
        scaling = 1.0 / pixel_scale_ratio**2
    else:
        scaling = pixel_scale_ratio
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value*", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero*", RuntimeWarning)
        for k, name in enumerate(names):
            out[name] = (wsum[k] * scaling / wt[k] / wt[k]).astype(np.float32)
    return out


def warm_up() -> None:
    """Compile (or load from the cache) ``square`` and ``turbo`` for float32 inputs, variances included.

    The Lanczos kernels compile (or load) on their first use.
    """
    ny, nx = 8, 8
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    pixmap = np.dstack([x + 0.25, y + 0.25])
    data = np.ones((ny, nx), np.float32)
    for kernel in WARM_KERNELS:
        for fresh in (True, False):
            d = FusedDrizzle((ny, nx), kernel=kernel, fillval=0.0, variance_names=("var_rnoise", "var_flat"))
            if not fresh:
                d.add_image(data, 1.0, pixmap, weight_map=data, variances={"var_rnoise": data, "var_flat": data})
            d.add_image(
                data,
                1.0,
                pixmap,
                weight_map=data,
                dq=np.zeros((ny, nx), np.uint32),
                variances={"var_rnoise": data, "var_flat": data},
            )
