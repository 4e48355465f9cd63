"""A large exposure drizzled a block of tiles at a time: bounded memory, the same bits.

Why
---
An exposure is drizzled onto its *frame*, the box of the mosaic it lands on
(:mod:`dask_resample.drizzle.kernel`). Every output plane of the frame (data, weight,
context, DQ, error, each variance, the exposure-time image) is held at once: for a
Roman WFI detector (4088² pixels) drizzled onto a skycell grid of half its pixel
scale the frame has about 70 million pixels, several GiB of planes, for one task.

How
---
Above ``resample.window-pixels`` frame pixels (when the fused kernel drizzles,
:mod:`dask_resample.drizzle.fused_kernel`), the frame's tiles are taken in square
blocks (*windows*) of at most a quarter of that many pixels (``WINDOWS_PER_FRAME_LIMIT``
in :mod:`dask_resample.drizzle.kernel`; one tile at least). For each window:

1. the input pixels that can reach it (their mapped centres within the kernel's
   reach of the window, as :func:`~dask_resample.drizzle.passes.input_crop` decides
   it for a tile, plus 2 pixels) form the *visited box* (:func:`window_visits`, one
   pass over the pixel map for all windows, :mod:`dask_resample.drizzle.map_scan`);
2. only that box of the input arrays is turned into drizzle inputs (weights, the
   data less its background level, square roots of variances, the exposure-time
   image): every one of them is element-wise, so a box of it equals the same box
   of the whole;
3. one fused pass drizzles the box onto the window alone: the kernel keeps the
   pixel map, the scan of the input range (outline, clipping, inversion) and
   every position in whole-input and whole-frame coordinates, and only stores
   into the window (``drizzle_once``'s ``visit`` and ``window``). Each window
   pixel receives the contributions of the same input pixels, in the same order,
   with the same arithmetic, as the whole frame's: the tiles are bit-identical
   to the unwindowed drizzle (``tests/test_windows.py``);
4. each of the window's tiles is cut, cropped and handed on before the next
   window is drizzled.

What a task holds is then the input's arrays as read, one window's planes, one
visited box of drizzle inputs and the pixel map's rows that box needs, whatever the
frame's size: the map (``ny * nx * 16`` bytes) is written to a file of the worker's
local directory and mapped one window at a time; for the exposures the plan expects
above the limit it is computed before the arrays are read, so the two are not held
together.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..params import ResampleParams
from .map_scan import map_step, reaching_boxes
from .passes import CROP_MARGIN_PX, Frame, _fused_passes, add_image_kwargs

__all__ = ["Window", "drizzle_windows", "plan_windows", "window_visits"]

log = logging.getLogger(__name__)

#: tile key -> (y0, x0, the tile's slice of the frame), as :func:`dask_resample.drizzle.kernel` keeps them.
Boxes = Mapping[tuple[int, int], tuple[int, int, tuple[slice, slice]]]


@dataclass(frozen=True)
class Window:
    """A block of an exposure's tiles drizzled at once.

    Attributes
    ----------
    y0, y1, x0, x1 : int
        The window in frame pixels (half-open): the union of its tiles' boxes.
    keys : tuple of (ty, tx)
        Its tiles, in row-major order.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    keys: tuple[tuple[int, int], ...]

    @property
    def shape_yx(self) -> tuple[int, int]:
        """(ny, nx) of the window."""
        return self.y1 - self.y0, self.x1 - self.x0


def plan_windows(boxes: Boxes, tile_shape_yx: tuple[int, int], max_pixels: int) -> list[Window]:
    """Group the frame's tiles into square blocks of at most ``max_pixels`` pixels (one tile at least).

    Parameters
    ----------
    boxes : mapping
        Tile key -> ``(y0, x0, (row slice, column slice))`` of the tile's part of the frame.
    tile_shape_yx : (int, int)
        The mosaic's tile shape.
    max_pixels : int
        Largest window (pixels); a tile larger than this is a window of its own.

    Returns
    -------
    list of Window
        In row-major order of their blocks.
    """
    th, tw = tile_shape_yx
    side = max(1, int(np.sqrt(max(1, max_pixels) / float(th * tw))))
    blocks: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for key in sorted(boxes):
        blocks.setdefault((key[0] // side, key[1] // side), []).append(key)
    windows = []
    for block in sorted(blocks):
        keys = tuple(blocks[block])
        slices = [boxes[k][2] for k in keys]
        windows.append(
            Window(
                y0=min(s[0].start for s in slices),
                y1=max(s[0].stop for s in slices),
                x0=min(s[1].start for s in slices),
                x1=max(s[1].stop for s in slices),
                keys=keys,
            )
        )
    return windows


def window_visits(
    pixmap: np.ndarray,
    rng: tuple[int, int, int, int],
    windows: list[Window],
    origin_yx: tuple[int, int],
    *,
    params: ResampleParams,
    pixel_scale_ratio: float,
) -> list[tuple[int, int, int, int] | None]:
    """The box of input pixels each window needs: ``(y0, y1, x0, x1)``, half-open (``None``: none).

    A pixel is needed when its mapped centre lies within ``reach`` output pixels of
    the window, ``reach`` as :func:`~dask_resample.drizzle.passes.input_crop` bounds
    every kernel's footprint, and the box grows by
    :data:`~dask_resample.drizzle.passes.CROP_MARGIN_PX` pixels, inside the input
    range ``rng``. Without a finite step or ``pixel_scale_ratio`` every window
    visits the whole range.

    Parameters
    ----------
    pixmap : numpy.ndarray
        The whole input's pixel map on the mosaic (not yet shifted to the frame).
    rng : tuple of int
        ``(xmin, xmax, ymin, ymax)``, inclusive: the input range drizzled.
    windows : list of Window
    origin_yx : (int, int)
        The frame's origin on the mosaic.
    params : ResampleParams
    pixel_scale_ratio : float
    """
    xmin, xmax, ymin, ymax = rng
    whole = (ymin, ymax + 1, xmin, xmax + 1)
    step = map_step(pixmap, rng)
    psr = float(pixel_scale_ratio or 0.0)
    if not (np.isfinite(step) and psr > 0):
        return [whole for _ in windows]
    reach = params.kernel_reach * max(step, 1.0 / psr) + 2.0
    fy0, fx0 = origin_yx
    limits = np.array(
        [
            (fx0 + w.x0 - 0.5 - reach, fx0 + w.x1 - 0.5 + reach, fy0 + w.y0 - 0.5 - reach, fy0 + w.y1 - 0.5 + reach)
            for w in windows
        ]
    )
    found = reaching_boxes(pixmap, rng, limits)
    lo, hi = found[:, 0::2], found[:, 1::2]  # first row, first column; last row, last column
    visits: list[tuple[int, int, int, int] | None] = []
    for k in range(len(windows)):
        if hi[k, 0] < 0:
            visits.append(None)
            continue
        visits.append(
            (
                max(ymin, int(lo[k, 0]) - CROP_MARGIN_PX),
                min(ymax, int(hi[k, 0]) + CROP_MARGIN_PX) + 1,
                max(xmin, int(lo[k, 1]) - CROP_MARGIN_PX),
                min(xmax, int(hi[k, 1]) + CROP_MARGIN_PX) + 1,
            )
        )
    return visits


def _box_of(model: Mapping[str, Any], shape_yx: tuple[int, int], sl: tuple[slice, slice]) -> dict[str, Any]:
    """The model dictionary with every input-shaped array cut to ``sl`` (metadata unchanged).

    numpy arrays are cut as views; other array-likes of the input's shape (an in-memory
    exposure may hold a dask or zarr array) are read as numpy arrays first.
    """

    def cut(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return v[sl] if v.shape == shape_yx else v
        if not isinstance(v, (str, bytes, Mapping)) and hasattr(v, "shape") and tuple(np.shape(v)) == shape_yx:
            return np.asarray(v)[sl]
        return v

    return {k: cut(v) for k, v in model.items()}


def drizzle_windows(
    model: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    pixmap: np.ndarray,
    rng: tuple[int, int, int, int],
    frame: tuple[int, int, int, int],
    boxes: Boxes,
    *,
    params: ResampleParams,
    tile_shape_yx: tuple[int, int],
    max_pixels: int,
    pixel_scale_ratio: float,
    inputs_of: Callable[[Mapping[str, Any]], dict[str, Any]],
    cut: Callable[[tuple[int, int], tuple], Any],
) -> Iterator[tuple[tuple[int, int], Any]]:
    """Drizzle an exposure window by window with the fused kernel; yield each tile's cut as it is done.

    Parameters
    ----------
    model : mapping or callable
        The exposure's ``stcal`` model dictionary (whole arrays, as read), or a function
        reading it, called once the pixel map is out of memory.
    pixmap : numpy.ndarray
        Its whole pixel map on the mosaic; shifted to the frame here, in place.
    rng : tuple of int
        ``(xmin, xmax, ymin, ymax)``: the input range the scan covers.
    frame : tuple of int
        ``(y0, y1, x0, x1)`` of the frame on the mosaic.
    boxes : mapping
        Tile key -> ``(y0, x0, its slice of the frame)``.
    params, tile_shape_yx, max_pixels, pixel_scale_ratio
        The run's parameters, tile shape, largest window and ``pixel_scale_ratio``.
    inputs_of : callable
        Model dictionary (of a box) -> the drizzle inputs of that box: ``data``,
        ``weight``, ``dq``, ``err``, ``variances`` (name -> array), ``exptime_image``
        (``(image, weights)`` or ``None``) and the ``add_image`` scalars ``exptime``.
    cut : callable
        ``(key, planes)`` -> what is yielded for the tile, ``planes`` being
        ``(img, wht, ctx, dq, err, variances, exptime)`` of the tile's box.

    Yields
    ------
    (ty, tx), object
        Each tile of ``boxes`` once, with ``cut``'s result (``None`` where no
        input pixel reaches its window).
    """
    from .fused_kernel import shrunk_range  # deferred: numba (the caller checked that it applies)

    fy0, fy1, fx0, fx1 = frame
    frame_shape = (fy1 - fy0, fx1 - fx0)
    windows = plan_windows(boxes, tile_shape_yx, max_pixels)
    visits = window_visits(pixmap, rng, windows, (fy0, fx0), params=params, pixel_scale_ratio=pixel_scale_ratio)
    xmin, xmax, ymin, ymax = rng
    try:
        scan = shrunk_range(pixmap, xmin, xmax, ymin, ymax)  # once, on the whole map in memory
    except ValueError:
        for key in boxes:
            yield key, None  # no valid pixel in the map: nothing lands (as the unwindowed drizzle)
        return
    pixmap -= np.array([fx0, fy0], dtype=np.float64)  # in place: the caller is done with it
    # The map moves to a file of this process's local directory, mapped anew for each window: a
    # window reads the rows it visits (and a few at the scan's corners), and unmapping the file
    # after it keeps only those pages in the process (the map itself is 16 * ny * nx bytes). Where
    # the file cannot be written (no space), the map stays in memory.
    with tempfile.TemporaryDirectory(prefix="dask-resample-pixmap-", dir=_local_directory()) as tmp:
        path = os.path.join(tmp, "pixmap.npy")
        kept: np.ndarray | None
        try:
            np.save(path, pixmap)
        except OSError as exc:
            log.warning("pixel map kept in memory: %s cannot hold it (%s)", tmp, exc)
            kept = pixmap
        else:
            kept = None
        del pixmap  # the caller passed its last reference: only the file (or `kept`) holds the map now
        yield from _drizzle_windows(
            model() if callable(model) else model,
            (lambda: np.load(path, mmap_mode="r")) if kept is None else (lambda: kept),
            scan,
            frame_shape,
            boxes,
            windows,
            visits,
            params,
            pixel_scale_ratio,
            inputs_of,
            cut,
        )


def _local_directory() -> str | None:
    """Where a task keeps a large temporary file: the Dask worker's local directory (purged by Dask),
    else Dask's ``temporary-directory``, else the system's."""
    try:
        from distributed import get_worker

        return str(get_worker().local_directory)
    except (ImportError, ValueError):  # not in a worker (the serial scheduler, a test)
        import dask

        return dask.config.get("temporary-directory", None) or None


def _drizzle_windows(
    model: Mapping[str, Any],
    mapped: Callable[[], np.ndarray],
    rng: tuple[int, int, int, int],
    frame_shape: tuple[int, int],
    boxes: Boxes,
    windows: list[Window],
    visits: list[tuple[int, int, int, int] | None],
    params: ResampleParams,
    pixel_scale_ratio: float,
    inputs_of: Callable[[Mapping[str, Any]], dict[str, Any]],
    cut: Callable[[tuple[int, int], tuple], Any],
) -> Iterator[tuple[tuple[int, int], Any]]:
    """The windows of :func:`drizzle_windows`, one after the other.

    ``mapped()`` maps the frame's pixel map; ``rng`` is the input range already shrunk to a finite map.
    """

    shape_yx = np.shape(model["data"])
    for window, visit in zip(windows, visits, strict=True):
        if visit is None:
            for key in window.keys:
                yield key, None
            continue
        vy0, vy1, vx0, vx1 = visit
        inputs = inputs_of(_box_of(model, shape_yx, (slice(vy0, vy1), slice(vx0, vx1))))
        kwargs = add_image_kwargs(
            mapped(),
            inputs["weight"],
            rng,
            exptime=inputs["exptime"],
            pixel_scale_ratio=pixel_scale_ratio,
            pixfrac=params.pixfrac,
        )
        # each tile's slice of the window
        local = {
            key: (
                0,
                0,
                (
                    slice(sl[0].start - window.y0, sl[0].stop - window.y0),
                    slice(sl[1].start - window.x0, sl[1].stop - window.x0),
                ),
            )
            for key in window.keys
            for sl in (boxes[key][2],)
        }
        parts: dict[tuple[int, int], list] = {}
        box = (window.y0, window.y1, window.x0, window.x1)
        frame_pass = Frame(kwargs, frame_shape, params, local, parts)
        _fused_passes(
            inputs["data"],
            inputs["dq"],
            inputs["err"],
            inputs["variances"],
            frame_pass,
            visit=visit,
            window=box,
            shrunk=True,
        )
        for key in window.keys:
            parts[key].append(None)
        if inputs["exptime_image"] is not None:
            _fused_exptime_pass(inputs["exptime_image"], frame_pass, visit=visit, window=box, shrunk=True)
        del inputs, kwargs, frame_pass  # the window's inputs, and its mapping of the pixel map
        for key in window.keys:
            yield key, cut(key, tuple(parts.pop(key)))


def _fused_exptime_pass(
    exptime_image: tuple[np.ndarray, np.ndarray],
    frame: Any,
    *,
    visit: tuple[int, int, int, int],
    window: tuple[int, int, int, int],
    shrunk: bool,
) -> None:
    """romancal's exposure-time image of the visited box on the window (the fused kernel)."""
    from .fused_kernel import FusedDrizzle  # deferred: numba

    kwargs, shape, params, boxes, parts = frame
    image, unit_weight = exptime_image
    dt = FusedDrizzle(shape, kernel=params.kernel, fillval=0.0, disable_ctx=True, window=window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt.add_image(
            image, **{**kwargs, "exptime": 1.0, "weight_map": unit_weight, "pixfrac": 1.0}, visit=visit, shrunk=shrunk
        )
    for key, (_, _, sl) in boxes.items():
        parts[key][6] = dt.out_img[sl].copy()
