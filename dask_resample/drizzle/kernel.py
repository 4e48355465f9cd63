"""Per-exposure work: read once, pixel map once, drizzle once, cut into tiles.

An exposure is drizzled by the ``drizzle`` C kernel exactly as
``stcal.resample.Resample.add_model`` drizzles it onto the full mosaic (same pixel
map, weights, ``pixel_scale_ratio``, ``iscale`` and input range), but onto a frame
that is the mosaic restricted to the exposure's footprint (grown by the kernel's
reach). The frame's edges never cut the exposure's outline except where the
mosaic's own edges do, so the kernel selects and weights exactly the same input
pixels as on the full frame: each tile's part of the frame is bit-identical to
the reference's per-exposure contribution, at the mosaic border too. Each tile's
part is kept as a :class:`TilePartial`, cropped to the pixels it touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..geometry import TileGrid, without_bounding_box
from ..geometry.pixmap import check_against_reference, fast_pixmap, plan_fast_pixmap, sample_pixels
from ..inputs._files import save_arrays
from ..inputs.dqmask import flagged_arrays, read_mask
from ..inputs.io import ExposureRef, load_model_dict
from ..params import VARIANCE_NAMES, ResampleParams
from ..store.location import Location
from .passes import Frame, _c_passes, _exptime_pass, _fused_passes, _unclipped_frame_box, fused_applies
from .passes import fused_kernel_available as fused_kernel_available  # re-exported: api, tests
from .passes import input_crop as input_crop  # re-exported: tests record the crops here
from .worker_memory import release_free_memory

__all__ = ["VARIANCE_NAMES", "DrizzleSpec", "TilePartial", "drizzle_exposure"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrizzleSpec:
    """What a drizzle task needs besides the exposure reference (small, picklable)."""

    out_wcs: Any
    shape_yx: tuple[int, int]
    tile_shape_yx: tuple[int, int]
    halo: int
    params: ResampleParams
    pixel_scale_ratio: float
    #: Use :mod:`dask_resample.geometry.pixmap` where it applies (``resample.fast-pixmap`` on the client).
    fast_pixmap: bool = True
    #: Drizzle every plane in one pass of :mod:`dask_resample.drizzle.fused_kernel` where it applies
    #: (``resample.fused-kernel`` on the client); false: drizzle's C kernel, one pass per plane.
    fused_kernel: bool = True
    #: Keep each input's pixel map here as float32 (``<index>.npy``) for the outlier blot to reuse.
    pixmap_dir: Location | None = None
    #: Drizzle only the input pixels that can land on the requested tiles (:func:`.passes.input_crop`);
    #: false (the default): the whole input range, as ``stcal`` drizzles it.
    crop_input: bool = False


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
    exptime : numpy.ndarray or None
        The input's effective exposure time drizzled alone (``compute_exptime``; 0 where not
        covered): romancal's ``ExptimeResampler`` image of this input, float32.
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
    exptime: np.ndarray | None = None

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Shape of the arrays."""
        return self.img.shape

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = [self.img, self.wht, self.ctx, self.dq, self.err, self.exptime, *self.var.values()]
        return int(sum(a.nbytes for a in arrays if a is not None))


#: Rows of the input evaluated at once by :func:`compute_pixmap` (bounds WCS temporaries).
PIXMAP_BLOCK_ROWS = 256

#: Smallest input (pixels) drizzled with the fast pixel map: below it the full
#: evaluation costs about as much as the fast path's recognition and self-check.
FAST_PIXMAP_MIN_PIXELS = 256 * 256

#: Kernels whose drizzled result is a continuous function of the pixel map (exact overlap
#: areas), so the fast map's last-bit differences from ``calc_pixmap`` (below 1e-8 pixel)
#: stay below 1e-7 of the output. The others select output pixels and kernel values by
#: truncating positions (point: nearest pixel; gaussian, lanczos: support cut-off and
#: tabulated values), where a position that differs in its last bit can move a whole
#: contribution: they keep the reference's own pixel map.
FAST_PIXMAP_KERNELS: tuple[str, ...] = ("square", "turbo")


def compute_pixmap(
    wcs_in: Any,
    wcs_out: Any,
    shape_yx: tuple[int, int],
    *,
    stepsize: float = 1,
    order: int = 1,
    fast: bool = False,
) -> np.ndarray:
    """Pixel map of an input onto the output frame, as ``stcal.resample.utils.calc_pixmap``.

    For ``stepsize == 1`` the WCS is evaluated in blocks of rows: the transforms are
    element-wise, so the result is identical to ``calc_pixmap`` while the peak memory
    of the WCS temporaries is bounded. Otherwise ``calc_pixmap`` itself is used.

    With ``fast=True`` (and ``stepsize == 1``) a recognised input/output pair is
    mapped by :mod:`dask_resample.geometry.pixmap` (one composed sky rotation instead of
    the WCS's spherical trigonometry), checked against this full evaluation on a
    sample of pixels; anything not recognised or not agreeing to
    :data:`~dask_resample.geometry.pixmap.CHECK_TOLERANCE_PX` uses the full evaluation.

    Returns
    -------
    numpy.ndarray
        Shape ``(ny, nx, 2)``; ``[..., 0]`` is x and ``[..., 1]`` is y in the output frame.
    """
    from stcal.resample.utils import calc_pixmap

    ny, nx = shape_yx
    if stepsize != 1 and max(ny, nx) > 10:
        return calc_pixmap(wcs_in, wcs_out, shape_yx, stepsize=stepsize, order=order)
    if fast:
        pixmap = _fast_pixmap_checked(wcs_in, wcs_out, (ny, nx))
        if pixmap is not None:
            return pixmap
    pixmap = np.empty((ny, nx, 2), np.float64)
    x_row = np.arange(nx, dtype=np.float64)
    for r0 in range(0, ny, PIXMAP_BLOCK_ROWS):
        r1 = min(ny, r0 + PIXMAP_BLOCK_ROWS)
        y, x = np.meshgrid(np.arange(r0, r1, dtype=np.float64), x_row, indexing="ij")
        pixmap[r0:r1, :, 0], pixmap[r0:r1, :, 1] = _full_values(wcs_in, wcs_out, x, y)
    return pixmap


def _full_values(wcs_in: Any, wcs_out: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output ``(x, y)`` of input pixels through both WCSs (output bounding box disabled)."""
    with without_bounding_box(wcs_out):
        return wcs_out.world_to_pixel_values(*wcs_in.pixel_to_world_values(x, y))


def _fast_pixmap_checked(wcs_in: Any, wcs_out: Any, shape_yx: tuple[int, int]) -> np.ndarray | None:
    """The fast pixel map if the WCS pair is recognised and it agrees with the full evaluation on samples."""

    plan = plan_fast_pixmap(wcs_in, wcs_out)
    if plan is None:
        log.debug("fast pixel map: WCS structure not recognised; full evaluation")
        return None
    pixmap = fast_pixmap(plan, shape_yx)
    if pixmap is None:
        log.debug("fast pixel map: input reaches the output's far hemisphere; full evaluation")
        return None
    y, x = sample_pixels(shape_yx, plan.source.bbox_xy)
    reference = _full_values(wcs_in, wcs_out, x.astype(np.float64), y.astype(np.float64))
    diff = check_against_reference(pixmap, reference, y, x)
    if diff is None:
        log.info("fast pixel map disagrees with the full WCS evaluation; full evaluation used")
        return None
    return pixmap


def drizzle_exposure(
    ref: ExposureRef, spec: DrizzleSpec, tile_keys: tuple[tuple[int, int], ...]
) -> dict[tuple[int, int], TilePartial | None]:
    """Drizzle one exposure into each of ``tile_keys`` (a worker task).

    Parameters
    ----------
    ref : ExposureRef
        The exposure.
    spec : DrizzleSpec
        Grid, frame padding (``halo``) and parameters.
    tile_keys : tuple of (ty, tx)
        Tiles the plan says the exposure overlaps.

    Returns
    -------
    dict
        ``(ty, tx) -> TilePartial`` (``None`` where nothing landed).
    """
    from stcal.resample.utils import build_driz_weight, get_tmeasure, resample_range

    params = spec.params
    need_var = params.enable_var
    need_err = params.compute_err == "driz_err"
    # an outlier mask makes NaNs consistent across every array, as in the *_crf.fits file: read them all
    flagged = ref.outlier_mask is not None
    model = load_model_dict(
        ref, need_var=need_var or flagged, need_err=need_err or flagged, need_var_sky=params.weight_type == "ivm-sky"
    )
    if ref.outlier_mask is not None:
        _apply_outliers(model, ref.outlier_mask)
    data = np.asarray(model["data"])
    wcs = model["wcs"]
    if data.ndim != 2:
        raise RuntimeError(f"{ref.filename}: input is not a 2D image")

    pixmap = compute_pixmap(
        wcs,
        spec.out_wcs,
        data.shape,
        stepsize=params.pixmap_stepsize,
        order=params.pixmap_order,
        fast=spec.fast_pixmap and params.kernel in FAST_PIXMAP_KERNELS and data.size >= FAST_PIXMAP_MIN_PIXELS,
    )
    if spec.pixmap_dir is not None:
        save_pixmap32(pixmap_path(spec.pixmap_dir, ref.index), pixmap)
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
        for name in params.variance_names:
            var = model.get(name)
            if var is None or np.size(var) == 0 or np.shape(var) != data.shape:
                continue
            variances[name] = var  # drizzled as sqrt(var), taken one array at a time
    err = model.get("err") if need_err else None
    dq = model.get("dq") if params.propagate_dq else None
    exptime_image = _exptime_image(model, params) if params.compute_exptime else None

    tiles = TileGrid(spec.shape_yx, spec.tile_shape_yx)
    frame = _frame_box(pixmap, rng, spec.halo, spec.shape_yx)
    out: dict[tuple[int, int], TilePartial | None] = {key: None for key in tile_keys}
    if frame is None:
        return out
    fy0, fy1, fx0, fx1 = frame
    # the part of each tile inside the frame, in frame coordinates
    boxes = {}
    for key in tile_keys:
        tile = tiles.tile(*key)
        y0, y1 = max(tile.y0, fy0), min(tile.y1, fy1)
        x0, x1 = max(tile.x0, fx0), min(tile.x1, fx1)
        if y0 < y1 and x0 < x1:
            boxes[key] = (y0, x0, (slice(y0 - fy0, y1 - fy0), slice(x0 - fx0, x1 - fx0)))
    if not boxes:
        return out
    if spec.crop_input:
        cropped = input_crop(
            pixmap,
            rng,
            [tiles.tile(*key) for key in boxes],
            params=params,
            pixel_scale_ratio=spec.pixel_scale_ratio,
            halo=spec.halo,
            shape_yx=spec.shape_yx,
        )
        if cropped is None:
            return out  # no input pixel reaches the requested tiles
        rng = cropped
    try:
        arrays = _drizzle_frame(
            data, weight, pixmap, dq, err, variances, rng, frame, spec, exptime, boxes, exptime_image
        )
    except ValueError as exc:
        if "valid pixels" not in str(exc):
            raise
        return out  # nothing of this exposure lands on the frame
    for key, (y0, x0, _) in boxes.items():
        img, wht, ctx, tile_dq, err_img, var_imgs, exp_img = arrays.pop(key)
        out[key] = _cropped(ref.index, y0, x0, img, wht, ctx, tile_dq, err_img, var_imgs, tmeasure, exp_img)
    del model, data, weight, pixmap, variances, err, dq, arrays, exptime_image
    release_free_memory()
    return out


def _exptime_image(model: dict[str, Any], params: ResampleParams) -> tuple[np.ndarray, np.ndarray]:
    """What romancal's ``ExptimeResampler`` drizzles for one input: (constant image, unit weights).

    The image holds the input's ``effective_exposure_time`` everywhere (its
    ``exposure_time`` when it has none); the weights are 1 on pixels whose DQ
    ``good_bits`` accept, else 0.
    """
    from stcal.resample.utils import build_driz_weight

    data = model["data"]
    value = model.get("effective_exposure_time")
    if value is None:
        value = model["exposure_time"]
    image = np.full(np.shape(data), value)
    weight = build_driz_weight(
        {"data": data, "dq": model["dq"]},
        weight_type=None,
        good_bits=params.good_bits,
        flag_name_map=params.flag_name_map,
    )
    return image, weight


def _apply_outliers(model: dict[str, Any], mask_path: str | Location) -> None:
    """Apply an exposure's outlier mask to its arrays (copies: in-memory inputs stay untouched)."""
    model.update(flagged_arrays(model, read_mask(mask_path)))


def pixmap_path(directory: Location, index: int) -> Location:
    """Where input ``index``'s kept pixel map goes."""
    return directory.join(f"{index:06d}.npy")


def save_pixmap32(path: Location, pixmap: np.ndarray) -> None:
    """Keep a pixel map as float32 (what drizzle's blot reads of it), written atomically."""
    save_arrays(path, pixmap.astype(np.float32))


def _frame_box(
    pixmap: np.ndarray, rng: tuple[int, int, int, int], pad: int, shape_yx: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Output box (y0, y1, x0, x1) holding everything the exposure can touch, clipped to the mosaic.

    The box contains the whole footprint of the drizzled input range plus ``pad``
    pixels, so its edges never cut the input's outline except where the mosaic's
    own edges do: the drizzle kernel then selects exactly the input pixels it
    selects when drizzling onto the full mosaic frame.
    """
    unclipped = _unclipped_frame_box(pixmap, rng, pad)
    if unclipped is None:
        return None
    ny, nx = shape_yx
    y0, y1, x0, x1 = unclipped
    y0, y1, x0, x1 = max(0, y0), min(ny, y1), max(0, x0), min(nx, x1)
    if y0 >= y1 or x0 >= x1:
        return None
    return y0, y1, x0, x1


def _drizzle_frame(
    data: np.ndarray,
    weight: np.ndarray,
    pixmap: np.ndarray,
    dq: np.ndarray | None,
    err: np.ndarray | None,
    variances: dict[str, np.ndarray],
    rng: tuple[int, int, int, int],
    frame: tuple[int, int, int, int],
    spec: DrizzleSpec,
    exptime: float,
    boxes: dict[tuple[int, int], tuple[int, int, tuple[slice, slice]]],
    exptime_image: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[tuple[int, int], tuple]:
    """Drizzle an exposure once onto ``frame`` and cut each tile's part out of it.

    The calls are those of ``stcal.resample.Resample.add_model`` (same pixel map,
    weights, input range, ``pixel_scale_ratio`` and ``iscale``), on a frame that is
    the mosaic restricted to where the exposure lands. With ``spec.fused_kernel``
    (``square`` and ``turbo``) one pass of :mod:`dask_resample.drizzle.fused_kernel` fills
    every plane; otherwise drizzle's C kernel makes one pass per plane, each output
    freed before the next. ``exptime_image`` (image, weights) is drizzled as
    romancal's ``ExptimeResampler`` drizzles it (drizzle's C): pixfrac 1, unit
    ``iscale`` and exposure time, 0 where not covered.
    """
    params = spec.params
    xmin, xmax, ymin, ymax = rng
    fy0, fy1, fx0, fx1 = frame
    pixmap -= np.array([fx0, fy0], dtype=np.float64)  # in place: the caller is done with it
    kwargs = {
        "exptime": exptime,
        "pixmap": pixmap,
        "pixel_scale_ratio": spec.pixel_scale_ratio,
        "iscale": 1.0,
        "weight_map": weight,
        "wht_scale": 1.0,
        "pixfrac": params.pixfrac,
        "in_units": "cps",
        "xmin": xmin,
        "xmax": xmax,
        "ymin": ymin,
        "ymax": ymax,
    }
    shape = (fy1 - fy0, fx1 - fx0)
    parts: dict[tuple[int, int], list] = {}
    frame_pass = Frame(kwargs, shape, params, boxes, parts)
    if spec.fused_kernel and fused_applies(params.kernel, params.pixfrac):
        _fused_passes(data, dq, err, variances, frame_pass)
    else:
        _c_passes(data, weight, dq, err, variances, frame_pass)
    for key in boxes:
        parts[key].append(None)
    if exptime_image is not None:
        _exptime_pass(exptime_image, frame_pass)
    return {key: tuple(v) for key, v in parts.items()}


def _cropped(
    index: int,
    y0: int,
    x0: int,
    img: np.ndarray,
    wht: np.ndarray,
    ctx: np.ndarray | None,
    dq: np.ndarray | None,
    err: np.ndarray | None,
    var: dict[str, np.ndarray],
    tmeasure: float | None,
    exptime: np.ndarray | None = None,
) -> TilePartial | None:
    """Crop the tile arrays to the box of pixels that hold anything."""
    touched = wht != 0
    if ctx is not None:
        touched |= ctx
    if dq is not None:
        touched |= dq != 0
    for v in var.values():
        touched |= np.isfinite(v)
    if exptime is not None:
        touched |= exptime != 0
    rows = np.flatnonzero(touched.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(touched.any(axis=0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))

    def cut(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[sl])

    def cut_optional(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else cut(a)

    return TilePartial(
        index=index,
        y0=y0 + int(rows[0]),
        x0=x0 + int(cols[0]),
        img=cut(img),
        wht=cut(wht),
        ctx=cut_optional(ctx),
        dq=cut_optional(dq),
        err=cut_optional(err),
        var={k: cut(v) for k, v in var.items()},
        tmeasure=None if tmeasure is None else float(tmeasure),
        exptime=cut_optional(exptime),
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
