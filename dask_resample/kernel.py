"""Per-exposure work: read once, pixel map once, drizzle into each overlapping tile.

For every tile it touches, an exposure is drizzled by the ``drizzle`` C kernel into
the tile's box grown by a halo, exactly as ``stcal.resample.Resample.add_model``
drizzles it into the full frame (same pixel map, weights, ``pixel_scale_ratio``,
``iscale`` and input range). The inner box is kept as a :class:`TilePartial`,
cropped to the pixels it actually touched.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import ResampleParams
from .io import ExposureRef, load_model_dict

__all__ = ["DrizzleSpec", "TilePartial", "drizzle_exposure"]

log = logging.getLogger(__name__)

#: Variance arrays, in the order the reference treats them.
VARIANCE_NAMES: tuple[str, ...] = ("var_rnoise", "var_flat", "var_poisson")

#: Extra input pixels kept around the range that reaches a tile, so that the C
#: kernel sees the same neighbourhood of every pixel it drizzles.
_INPUT_MARGIN = 3


@dataclass(frozen=True)
class DrizzleSpec:
    """What a drizzle task needs besides the exposure reference (small, picklable)."""

    out_wcs: Any
    shape_yx: tuple[int, int]
    tile_shape_yx: tuple[int, int]
    halo: int
    params: ResampleParams
    pixel_scale_ratio: float


@dataclass(frozen=True)
class TilePartial:
    """What one exposure drizzled into one tile.

    Arrays cover ``[y0:y0+ny, x0:x0+nx]`` of the mosaic (a sub-box of the tile).

    Attributes
    ----------
    index : int
        Input index.
    img, wht : numpy.ndarray
        Drizzled data (0 where ``wht == 0``) and weight, float32.
    ctx : numpy.ndarray or None
        Pixels this input contributed to (bool).
    dq : numpy.ndarray or None
        OR of the input DQ flags drizzled here (uint32).
    err : numpy.ndarray or None
        Drizzled error (``compute_err="driz_err"``), 0 where ``wht == 0``.
    var : dict
        Per variance name, the drizzled variance ``(drizzled sqrt(var))**2``
        (NaN where not covered).
    tmeasure : float
        Measurement (else exposure) time, the variance weight for ``weight_type="exptime"``.
    """

    index: int
    y0: int
    x0: int
    img: np.ndarray
    wht: np.ndarray
    ctx: np.ndarray | None
    dq: np.ndarray | None
    err: np.ndarray | None
    var: dict[str, np.ndarray]
    tmeasure: float | None

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Shape of the arrays."""
        return self.img.shape

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = [self.img, self.wht, self.ctx, self.dq, self.err, *self.var.values()]
        return int(sum(a.nbytes for a in arrays if a is not None))


#: Rows of the input evaluated at once by :func:`compute_pixmap` (bounds WCS temporaries).
PIXMAP_BLOCK_ROWS = 256


def compute_pixmap(
    wcs_in: Any, wcs_out: Any, shape_yx: tuple[int, int], *, stepsize: float = 1, order: int = 1
) -> np.ndarray:
    """Pixel map of an input onto the output frame, as ``stcal.resample.utils.calc_pixmap``.

    For ``stepsize == 1`` the WCS is evaluated in blocks of rows: the transforms are
    element-wise, so the result is identical to ``calc_pixmap`` while the peak memory
    of the WCS temporaries is bounded. Otherwise ``calc_pixmap`` itself is used.

    Returns
    -------
    numpy.ndarray
        Shape ``(ny, nx, 2)``; ``[..., 0]`` is x and ``[..., 1]`` is y in the output frame.
    """
    from stcal.resample.utils import calc_pixmap

    ny, nx = shape_yx
    if stepsize != 1 and max(ny, nx) > 10:
        return calc_pixmap(wcs_in, wcs_out, shape_yx, stepsize=stepsize, order=order)
    bbox_to = getattr(wcs_out, "bounding_box", None)
    if bbox_to is not None:
        try:
            bbox_to = bbox_to.bounding_box(order="F")
        except AttributeError:
            bbox_to = tuple(bbox_to)
    pixmap = np.empty((ny, nx, 2), np.float64)
    try:
        if bbox_to is not None:
            wcs_out.bounding_box = None
        x_row = np.arange(nx, dtype=np.float64)
        for r0 in range(0, ny, PIXMAP_BLOCK_ROWS):
            r1 = min(ny, r0 + PIXMAP_BLOCK_ROWS)
            y, x = np.meshgrid(np.arange(r0, r1, dtype=np.float64), x_row, indexing="ij")
            ox, oy = wcs_out.world_to_pixel_values(*wcs_in.pixel_to_world_values(x, y))
            pixmap[r0:r1, :, 0] = ox
            pixmap[r0:r1, :, 1] = oy
    finally:
        if bbox_to is not None:
            wcs_out.bounding_box = bbox_to
    return pixmap


class _RectFinder:
    """Find the input pixels whose centres map into an output box.

    The search runs on a coarse sample of the pixel map (every ``step`` pixels),
    with the box grown by the largest distance between neighbouring samples, and
    the result is grown by one step: a superset of the exact rectangle. Extra input
    pixels change nothing (the drizzle kernel skips pixels whose centres fall
    outside its output frame); a missing one would. Pixel maps with undefined
    (NaN) samples use the exact search.
    """

    def __init__(self, pixmap: np.ndarray, rng: tuple[int, int, int, int], step: int = 8) -> None:
        self.px = pixmap[..., 0]
        self.py = pixmap[..., 1]
        self.rng = rng
        ny, nx = self.px.shape
        self.ys = np.unique(np.r_[0:ny:step, ny - 1])
        self.xs = np.unique(np.r_[0:nx:step, nx - 1])
        self.cpx = self.px[np.ix_(self.ys, self.xs)]
        self.cpy = self.py[np.ix_(self.ys, self.xs)]
        self.coarse = bool(np.isfinite(self.cpx).all() and np.isfinite(self.cpy).all()) and min(ny, nx) > 2 * step
        if self.coarse:
            gaps = [np.abs(np.diff(a, axis=ax)) for a in (self.cpx, self.cpy) for ax in (0, 1)]
            self.margin = float(max(float(g.max()) if g.size else 0.0 for g in gaps)) + 2.0

    def rect(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """Input rectangle (xmin, xmax, ymin, ymax), clipped to the input range, or None."""
        by0, by1, bx0, bx1 = box
        if self.coarse:
            m = self.margin
            inside = (self.cpx >= bx0 - 1.5 - m) & (self.cpx <= bx1 + 0.5 + m) & \
                     (self.cpy >= by0 - 1.5 - m) & (self.cpy <= by1 + 0.5 + m)
            rows = np.flatnonzero(inside.any(axis=1))
            if rows.size == 0:
                return None
            cols = np.flatnonzero(inside.any(axis=0))
            y0 = int(self.ys[max(rows[0] - 1, 0)])
            y1 = int(self.ys[min(rows[-1] + 1, self.ys.size - 1)])
            x0 = int(self.xs[max(cols[0] - 1, 0)])
            x1 = int(self.xs[min(cols[-1] + 1, self.xs.size - 1)])
        else:
            with np.errstate(invalid="ignore"):
                inside = (self.px >= bx0 - 1.5) & (self.px <= bx1 + 0.5) & \
                         (self.py >= by0 - 1.5) & (self.py <= by1 + 0.5)
            rows = np.flatnonzero(inside.any(axis=1))
            if rows.size == 0:
                return None
            cols = np.flatnonzero(inside.any(axis=0))
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        xmin, xmax, ymin, ymax = self.rng
        x0, x1 = max(x0, xmin), min(x1, xmax)
        y0, y1 = max(y0, ymin), min(y1, ymax)
        if x0 > x1 or y0 > y1:
            return None
        return x0, x1, y0, y1


def drizzle_exposure(
    ref: ExposureRef, spec: DrizzleSpec, tile_keys: tuple[tuple[int, int], ...]
) -> dict[tuple[int, int], TilePartial | None]:
    """Drizzle one exposure into each of ``tile_keys`` (a worker task).

    Parameters
    ----------
    ref : ExposureRef
        The exposure.
    spec : DrizzleSpec
        Grid, halo and parameters.
    tile_keys : tuple of (ty, tx)
        Tiles the plan says the exposure overlaps.

    Returns
    -------
    dict
        ``(ty, tx) -> TilePartial`` (``None`` where nothing landed).
    """
    from stcal.resample.utils import build_driz_weight, get_tmeasure, resample_range

    from .grid import TileGrid

    params = spec.params
    need_var = params.variances_enabled
    need_err = params.compute_err == "driz_err"
    model = load_model_dict(ref, need_var=need_var, need_err=need_err)
    data = np.asarray(model["data"])
    wcs = model["wcs"]
    if data.ndim != 2:
        raise RuntimeError(f"{ref.filename}: input is not a 2D image")

    pixmap = compute_pixmap(wcs, spec.out_wcs, data.shape, stepsize=params.pixmap_stepsize,
                            order=params.pixmap_order)
    weight = build_driz_weight(
        model, weight_type=params.weight_type, good_bits=params.good_bits, flag_name_map=params.flag_name_map
    )
    level = model.get("level")
    if not model.get("subtracted") and level is not None:
        data = data - level
    bbox = getattr(wcs, "bounding_box", None)
    rng = resample_range(data.shape, bbox)
    tmeasure = get_tmeasure(model)[0]
    exptime = model["exposure_time"]
    variances = {}
    if need_var:
        for name in VARIANCE_NAMES:
            var = model.get(name)
            if var is None or np.size(var) == 0 or np.shape(var) != data.shape:
                continue
            with np.errstate(invalid="ignore"):
                variances[name] = np.sqrt(var)
    err = model.get("err") if need_err else None
    dq = model.get("dq") if params.propagate_dq else None

    tiles = TileGrid(spec.shape_yx, spec.tile_shape_yx)
    finder = _RectFinder(pixmap, rng)
    out: dict[tuple[int, int], TilePartial | None] = {}
    for key in tile_keys:
        tile = tiles.tile(*key)
        hy0, hy1, hx0, hx1 = tile.halo_box(spec.halo, spec.shape_yx)
        rect = finder.rect((hy0, hy1, hx0, hx1))
        if rect is None:
            out[key] = None
            continue
        try:
            arrays = _drizzle_tile(data, weight, pixmap, dq, err, variances, rect, (hy0, hy1, hx0, hx1), tile,
                                   spec, exptime, margin=_INPUT_MARGIN)
        except ValueError as exc:
            if "valid pixels" not in str(exc):
                raise
            # the C kernel's scanner needs a non-degenerate input polygon: retry with the whole input
            try:
                arrays = _drizzle_tile(data, weight, pixmap, dq, err, variances, rect, (hy0, hy1, hx0, hx1), tile,
                                       spec, exptime, margin=None)
            except ValueError as exc2:
                if "valid pixels" not in str(exc2):
                    raise
                out[key] = None
                continue
        img, wht, ctx, tile_dq, err_img, var_imgs = arrays
        out[key] = _cropped(ref.index, tile, img, wht, ctx, tile_dq, err_img, var_imgs, tmeasure)
    return out


def _drizzle_tile(
    data: np.ndarray,
    weight: np.ndarray,
    pixmap: np.ndarray,
    dq: np.ndarray | None,
    err: np.ndarray | None,
    variances: dict[str, np.ndarray],
    rect: tuple[int, int, int, int],
    halo_box: tuple[int, int, int, int],
    tile: Any,
    spec: DrizzleSpec,
    exptime: float,
    margin: int | None,
) -> tuple:
    """Drizzle the input pixels of ``rect`` into ``halo_box``; return the inner-box arrays."""
    from drizzle.resample import Drizzle

    params = spec.params
    xmin, xmax, ymin, ymax = rect
    hy0, hy1, hx0, hx1 = halo_box
    if margin is None:
        cy0, cy1, cx0, cx1 = 0, data.shape[0], 0, data.shape[1]
    else:
        cy0 = max(0, ymin - margin)
        cy1 = min(data.shape[0], ymax + margin + 1)
        cx0 = max(0, xmin - margin)
        cx1 = min(data.shape[1], xmax + margin + 1)
    crop = (slice(cy0, cy1), slice(cx0, cx1))
    pm = pixmap[crop] - np.array([hx0, hy0], dtype=np.float64)
    kwargs = {
        "exptime": exptime,
        "pixmap": pm,
        "pixel_scale_ratio": spec.pixel_scale_ratio,
        "iscale": 1.0,
        "weight_map": weight[crop],
        "wht_scale": 1.0,
        "pixfrac": params.pixfrac,
        "in_units": "cps",
        "xmin": xmin - cx0,
        "xmax": xmax - cx0,
        "ymin": ymin - cy0,
        "ymax": ymax - cy0,
    }
    halo_shape = (hy1 - hy0, hx1 - hx0)
    inner = (slice(tile.y0 - hy0, tile.y1 - hy0), slice(tile.x0 - hx0, tile.x1 - hx0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        driz = Drizzle(
            kernel=params.kernel, fillval="0", out_shape=halo_shape,
            disable_ctx=not params.enable_ctx, begin_ctx_id=0, max_ctx_id=0,
        )
        if dq is not None:
            driz.add_image(data[crop], dq=dq[crop], **kwargs)
        else:
            driz.add_image(data[crop], **kwargs)
        wht = driz.out_wht[inner]
        img = np.where(wht != 0, driz.out_img[inner], np.float32(0))
        ctx = (driz.out_ctx[0][inner] != 0) if params.enable_ctx else None
        tile_dq = driz.out_dq[inner] if dq is not None else None
        err_img = None
        if err is not None:
            derr = Drizzle(kernel=params.kernel, fillval="0", out_shape=halo_shape, disable_ctx=True)
            derr.add_image(err[crop], **kwargs)
            err_img = np.where(wht != 0, derr.out_img[inner], np.float32(0))
        var_imgs = {}
        for name, sqrt_var in variances.items():
            dv = Drizzle(kernel=params.kernel, fillval=np.nan, out_shape=halo_shape, disable_ctx=True)
            dv.add_image(sqrt_var[crop], **kwargs)
            var_imgs[name] = dv.out_img[inner] ** 2
    return img, wht, ctx, tile_dq, err_img, var_imgs


def _cropped(
    index: int,
    tile: Any,
    img: np.ndarray,
    wht: np.ndarray,
    ctx: np.ndarray | None,
    dq: np.ndarray | None,
    err: np.ndarray | None,
    var: dict[str, np.ndarray],
    tmeasure: float | None,
) -> TilePartial | None:
    """Crop the tile arrays to the box of pixels that hold anything."""
    touched = wht != 0
    if ctx is not None:
        touched |= ctx
    if dq is not None:
        touched |= dq != 0
    for v in var.values():
        touched |= np.isfinite(v)
    rows = np.flatnonzero(touched.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(touched.any(axis=0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))

    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[sl])

    return TilePartial(
        index=index,
        y0=tile.y0 + int(rows[0]),
        x0=tile.x0 + int(cols[0]),
        img=cut(img),
        wht=cut(wht),
        ctx=cut(ctx),
        dq=cut(dq),
        err=cut(err),
        var={k: cut(v) for k, v in var.items()},
        tmeasure=None if tmeasure is None else float(tmeasure),
    )


def _register_sizeof() -> None:
    """Tell Dask how much memory partials hold (for its memory accounting)."""
    try:
        from dask.sizeof import sizeof
    except ImportError:  # pragma: no cover
        return

    @sizeof.register(TilePartial)
    def _sizeof_partial(p: TilePartial) -> int:
        return p.nbytes + 256


_register_sizeof()
