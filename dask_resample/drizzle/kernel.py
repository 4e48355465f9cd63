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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..geometry import TileGrid
from ..geometry.exposure_pixmap import FAST_PIXMAP_KERNELS, FAST_PIXMAP_MIN_PIXELS, compute_pixmap
from ..inputs._files import save_arrays
from ..inputs.dqmask import flagged_arrays, read_mask
from ..inputs.io import ExposureRef, load_model_dict, load_wcs
from ..params import VARIANCE_NAMES, ResampleParams
from ..store.location import Location
from .exposure_inputs import drizzle_inputs
from .passes import (
    Frame,
    _c_passes,
    _exptime_pass,
    _fused_passes,
    _unclipped_frame_box,
    add_image_kwargs,
    fused_applies,
)
from .passes import fused_kernel_available as fused_kernel_available  # re-exported: api, tests
from .passes import input_crop as input_crop  # re-exported: tests record the crops here
from .windows import drizzle_windows
from .worker_memory import release_free_memory

__all__ = ["VARIANCE_NAMES", "DrizzleSpec", "TilePartial", "drizzle_exposure", "exposure_partials"]

log = logging.getLogger(__name__)


#: A frame drizzled in windows (above ``DrizzleSpec.window_pixels``) is cut into blocks of at most
#: this fraction of that limit: a frame just above it still comes in several blocks, and frames
#: below it (a 2048² JWST exposure on a grid of its own scale), which one pass drizzles fastest,
#: are not cut at all.
WINDOWS_PER_FRAME_LIMIT = 4


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
    #: Frames of more pixels are drizzled a block of tiles at a time (:mod:`.windows`, with the
    #: fused kernel; ``resample.window-pixels`` on the client), in blocks of at most
    #: ``window_pixels // WINDOWS_PER_FRAME_LIMIT`` pixels; 0: never.
    window_pixels: int = 0
    #: Exposures whose frame the plan expects above ``window_pixels``: their pixel map is computed
    #: before their arrays are read, so the two are never held at once.
    map_first: frozenset[int] = frozenset()


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


def drizzle_exposure(
    ref: ExposureRef, spec: DrizzleSpec, tile_keys: tuple[tuple[int, int], ...]
) -> dict[tuple[int, int], TilePartial | None]:
    """Drizzle one exposure into each of ``tile_keys``: :func:`exposure_partials` as a dictionary."""
    return dict(exposure_partials(ref, spec, tile_keys))


def exposure_partials(
    ref: ExposureRef, spec: DrizzleSpec, tile_keys: tuple[tuple[int, int], ...]
) -> Iterator[tuple[tuple[int, int], TilePartial | None]]:
    """Drizzle one exposure into each of ``tile_keys``, yielding each tile's partial when it is done.

    Parameters
    ----------
    ref : ExposureRef
        The exposure.
    spec : DrizzleSpec
        Grid, frame padding (``halo``) and parameters.
    tile_keys : tuple of (ty, tx)
        Tiles the plan says the exposure overlaps.

    Yields
    ------
    (ty, tx), TilePartial or None
        Every key of ``tile_keys`` once (``None`` where nothing landed). A frame of
        more than ``spec.window_pixels`` pixels is drizzled a block of tiles at a time
        (:mod:`dask_resample.drizzle.windows`), each block's partials yielded before
        the next is drizzled.
    """
    from stcal.resample.utils import get_tmeasure, resample_range

    params = spec.params
    need_var = params.enable_var
    need_err = params.compute_err == "driz_err"
    tiles = TileGrid(spec.shape_yx, spec.tile_shape_yx)
    state: dict[str, Any] = {}

    def load() -> dict[str, Any]:
        # an outlier mask makes NaNs consistent across every array, as in the *_crf.fits file: read them all
        flagged = ref.outlier_mask is not None
        model = load_model_dict(
            ref,
            need_var=need_var or flagged,
            need_err=need_err or flagged,
            need_var_sky=params.weight_type == "ivm-sky",
        )
        if ref.outlier_mask is not None:
            _apply_outliers(model, ref.outlier_mask)
        state["tmeasure"] = get_tmeasure(model)[0]
        return model

    windowed = spec.window_pixels > 0 and spec.fused_kernel and fused_applies(params.kernel, params.pixfrac)
    model: dict[str, Any] | None = None
    if windowed and ref.index in spec.map_first:
        # a frame that may be drizzled in windows: its pixel map first, the arrays once the map is
        # out of memory (drizzle.windows), so that the two are never held together
        wcs, shape_yx, _ = load_wcs(ref)
    else:
        model = load()
        wcs, shape_yx = model["wcs"], np.shape(model["data"])
    if len(shape_yx) != 2:
        raise RuntimeError(f"{ref.filename}: input is not a 2D image")
    ny, nx = shape_yx
    pixmap = compute_pixmap(
        wcs,
        spec.out_wcs,
        (ny, nx),
        stepsize=params.pixmap_stepsize,
        order=params.pixmap_order,
        fast=spec.fast_pixmap and params.kernel in FAST_PIXMAP_KERNELS and ny * nx >= FAST_PIXMAP_MIN_PIXELS,
    )
    if spec.pixmap_dir is not None:
        save_pixmap32(pixmap_path(spec.pixmap_dir, ref.index), pixmap)
    rng = resample_range((ny, nx), getattr(wcs, "bounding_box", None))

    unclipped = _unclipped_frame_box(pixmap, rng, spec.halo)
    frame = _clipped_frame_box(unclipped, spec.shape_yx)
    # the part of each tile inside the frame, in frame coordinates
    boxes = {}
    if frame is not None:
        fy0, fy1, fx0, fx1 = frame
        for key in tile_keys:
            tile = tiles.tile(*key)
            y0, y1 = max(tile.y0, fy0), min(tile.y1, fy1)
            x0, x1 = max(tile.x0, fx0), min(tile.x1, fx1)
            if y0 < y1 and x0 < x1:
                boxes[key] = (y0, x0, (slice(y0 - fy0, y1 - fy0), slice(x0 - fx0, x1 - fx0)))
    for key in tile_keys:
        if key not in boxes:
            yield key, None
    if not boxes:
        return
    assert frame is not None  # boxes exist only inside a frame
    if spec.crop_input:
        cropped = input_crop(
            pixmap,
            rng,
            [tiles.tile(*key) for key in boxes],
            params=params,
            pixel_scale_ratio=spec.pixel_scale_ratio,
            halo=spec.halo,
            shape_yx=spec.shape_yx,
            unclipped=unclipped,
        )
        if cropped is None:
            for key in boxes:
                yield key, None  # no input pixel reaches the requested tiles
            return
        rng = cropped

    def partial(key: tuple[int, int], planes: tuple) -> TilePartial | None:
        img, wht, ctx, tile_dq, err_img, var_imgs, exp_img = planes
        y0, x0, _ = boxes[key]
        return _cropped(ref.index, y0, x0, img, wht, ctx, tile_dq, err_img, var_imgs, state["tmeasure"], exp_img)

    fy0, fy1, fx0, fx1 = frame
    if windowed and (fy1 - fy0) * (fx1 - fx0) > spec.window_pixels:
        parts = drizzle_windows(
            model if model is not None else load,
            pixmap,
            rng,
            frame,
            boxes,
            params=params,
            tile_shape_yx=spec.tile_shape_yx,
            max_pixels=spec.window_pixels // WINDOWS_PER_FRAME_LIMIT,
            pixel_scale_ratio=spec.pixel_scale_ratio,
            inputs_of=lambda m: drizzle_inputs(m, params, need_var=need_var, need_err=need_err),
            cut=partial,
        )
        del pixmap, model  # the windows keep the pixel map in a file, not in memory
        yield from parts
        del parts
        release_free_memory()
        return

    if model is None:
        model = load()
    inputs = drizzle_inputs(model, params, need_var=need_var, need_err=need_err)
    try:
        arrays = _drizzle_frame(
            inputs["data"],
            inputs["weight"],
            pixmap,
            inputs["dq"],
            inputs["err"],
            inputs["variances"],
            rng,
            frame,
            spec,
            inputs["exptime"],
            boxes,
            inputs["exptime_image"],
        )
    except ValueError as exc:
        if "valid pixels" not in str(exc):
            raise
        arrays = None  # nothing of this exposure lands on the frame
    del model, pixmap, inputs
    for key in boxes:
        yield key, None if arrays is None else partial(key, arrays.pop(key))
    del arrays
    release_free_memory()


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
    return _clipped_frame_box(_unclipped_frame_box(pixmap, rng, pad), shape_yx)


def _clipped_frame_box(
    unclipped: tuple[int, int, int, int] | None, shape_yx: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """:func:`_frame_box` from its unclipped box (``_unclipped_frame_box``)."""
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
    (``square``, ``turbo``, ``lanczos2``, ``lanczos3``) one pass of :mod:`dask_resample.drizzle.fused_kernel` fills
    every plane; otherwise drizzle's C kernel makes one pass per plane, each output
    freed before the next. ``exptime_image`` (image, weights) is drizzled as
    romancal's ``ExptimeResampler`` drizzles it (drizzle's C): pixfrac 1, unit
    ``iscale`` and exposure time, 0 where not covered.
    """
    params = spec.params
    fy0, fy1, fx0, fx1 = frame
    pixmap -= np.array([fx0, fy0], dtype=np.float64)  # in place: the caller is done with it
    kwargs = add_image_kwargs(
        pixmap, weight, rng, exptime=exptime, pixel_scale_ratio=spec.pixel_scale_ratio, pixfrac=params.pixfrac
    )
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
