"""Living mosaics: add or remove exposures, recompute only the tiles they touch, one version per update.

A living mosaic is created on a fixed sky grid (:class:`GridSpec`, or a given
``output_wcs``) that never moves; tiles exist only where data land. Each
:func:`update` adds inputs at the end of the input order and/or removes
inputs, and is one transaction of the mosaic's icechunk repository
(:mod:`dask_resample.store.living`).

Why the result equals a run from scratch: a tile's value is a deterministic
reduction of its contributors' partials in input order, and an exposure's
partial of a tile does not depend on which other tiles are drizzled. The
update plans the mosaic before and after the change and sorts every tile:

* **extended** (a recomputed tile whose contributors before the update are,
  in order and with the same context bits, the first of its contributors
  after it: added inputs only): its running sums, which the mosaic keeps
  (:mod:`~dask_resample.living.sums`), are read and only the added inputs'
  partials are added to them, the operations of a reduction from scratch in
  the same order;
* **recomputed** (its contributors otherwise changed): it is reduced again
  from all its contributors, every earlier input being drizzled only for
  the recomputed tiles it reaches, and only its rows and columns that land on
  them (:func:`dask_resample.drizzle.passes.input_crop`);
* **relabelled**: the same contributors, but their context bits moved (a
  removal renumbers the inputs after it): only ``con`` is rewritten, each
  old bit moved to its new place;
* **cleared**: no input reaches it any more: every chunk is removed (fill values);
* untouched: nothing is read or written.

The update plans from the inputs' descriptions kept in the mosaic (outline,
times, pixel area, ...: :mod:`~dask_resample.living.records`); only the added
inputs, and earlier ones whose file's content changed, are read for planning
(:mod:`~dask_resample.living.inputs`). An earlier input whose content changed
is planned as it was for the previous version and as it is now, so the tiles
it reached and those it reaches are recomputed (the version records it under
``changed``). The tiles are sorted and written by :mod:`~dask_resample.living.tiles`.

The number of context planes follows the inputs (``con`` is resized in the
same transaction). The grid, the tile shape and the drizzle parameters are
those of the first version; a different value is refused before any work.

**Inputs partly off the grid** (the documented rule): an input that lands
partly on the grid contributes the part that lands on it, as a run from
scratch on the same grid does (a warning names it); an input that does not
land on the grid at all is refused with an :class:`~dask_resample.inputs.io.InputError`
before any work.

**Outlier detection** is refused (``outliers=True``): its flags depend on the
median of every exposure group, so an added exposure changes the flags, hence
the partials, of earlier inputs far from the tiles it touches.

Concurrent updates: the commit of an update whose base is no longer the
newest version fails; the update is then planned again on the newest version
(it is rebased: its inputs go after those committed meanwhile) and recomputed,
up to ``retries`` times, after which :class:`LivingConflictError` is raised.
No update is lost silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..execution.workers import connect_for_run
from ..geometry import gwcs_from_text
from ..params import ResampleParams
from ..store import Location, as_location
from ..store.living import LivingStoreError, Version, has_version, is_living, read_living_metadata, versions
from .attempt import BaseMoved, update_once
from .inputs import sources_of
from .records import GridSpec, LivingUpdate, content_fingerprint, params_of
from .tiles import living_tile_task

__all__ = [
    "GridSpec",
    "LivingConflictError",
    "LivingStoreError",
    "LivingUpdate",
    "content_fingerprint",
    "has_version",
    "history",
    "is_living",
    "living_output_wcs",
    "living_params",
    "living_tile_task",
    "update",
]

log = logging.getLogger(__name__)


class LivingConflictError(RuntimeError):
    """An update could not be committed: other updates kept landing first (the message says how often)."""


def living_output_wcs(
    mosaic: str | Location, storage_options: Mapping[str, Any] | None = None, version: int | str | None = None
) -> dict[str, Any]:
    """The ``output_wcs`` of a living mosaic: ``resample(inputs, out, output_wcs=...)`` makes the same grid.

    Includes the ``pixel_scale_ratio`` fixed when the mosaic was created (from
    its first input), which a run from scratch would otherwise take from its own first input.
    """
    meta = read_living_metadata(as_location(mosaic, storage_options), version)
    wcs = gwcs_from_text(meta["wcs_asdf"])
    wcs.array_shape = tuple(meta["grid"]["shape_yx"])
    return {
        "wcs": wcs,
        "pixel_scale": meta["grid"]["pixel_scale"],
        "pixel_scale_ratio": meta["grid"]["pixel_scale_ratio"],
    }


def living_params(mosaic: str | Location, storage_options: Mapping[str, Any] | None = None) -> ResampleParams:
    """The (fixed) drizzle parameters of a living mosaic."""
    return params_of(read_living_metadata(as_location(mosaic, storage_options))["params"])


def history(mosaic: str | Location, storage_options: Mapping[str, Any] | None = None) -> list[Version]:
    """The versions of a living mosaic, newest first."""
    return versions(as_location(mosaic, storage_options))


def update(
    mosaic: str | Location,
    add: Any = None,
    remove: Sequence[str] | None = None,
    *,
    grid: GridSpec | None = None,
    output_wcs: Mapping[str, Any] | None = None,
    tile_shape: Sequence[int] | None = None,
    params: ResampleParams | None = None,
    storage_options: Mapping[str, Any] | None = None,
    client: Any = None,
    scheduler: str = "distributed",
    outliers: Any = False,
    retries: int = 3,
    message: str | None = None,
    **param_kwargs: Any,
) -> LivingUpdate:
    """Add inputs to and/or remove inputs from a living mosaic, in one new version.

    The first call creates the mosaic (``grid`` or ``output_wcs`` required).
    Every array equals, bit for bit, that of :func:`dask_resample.resample`
    over the mosaic's inputs in their order (earlier inputs first, added ones
    last) on the same grid (``output_wcs=living_output_wcs(mosaic)``).

    Parameters
    ----------
    mosaic : str or Location
        Local path or ``s3://`` URL of the living mosaic (an icechunk repository).
    add : inputs, optional
        As for :func:`dask_resample.resample` (an association, paths, URLs),
        appended to the input order. Files only (no in-memory exposures): an
        update reads earlier inputs again.
    remove : sequence of str, optional
        Inputs to remove, by file name, source path or content fingerprint (or
        a unique prefix of at least 8 characters of it).
    grid : GridSpec, optional
        The fixed grid of a new mosaic.
    output_wcs : dict, optional
        Or its WCS, as for :func:`~dask_resample.resample`.
    tile_shape : (int, int), optional
        Tile shape of a new mosaic.
    params : ResampleParams, optional
        Drizzle parameters (or as keywords): fixed at creation; later updates
        may repeat them, and a different value is refused.
    storage_options : mapping, optional
        Options of the file system of ``mosaic`` and of input URLs.
    client : distributed.Client, optional
        As for :func:`~dask_resample.resample`.
    scheduler : {"distributed", "serial"}
    outliers : bool
        Must be false (see the module documentation).
    retries : int
        Plannings again when other updates commit first.
    message : str, optional
        The version's message.

    Returns
    -------
    LivingUpdate

    Raises
    ------
    ValueError
        ``outliers``, a parameter or grid different from the mosaic's, an input
        to remove that it does not hold, an input added twice.
    InputError
        An added input that does not land on the grid.
    LivingConflictError
        When other updates kept committing first.
    """
    t0 = time.perf_counter()
    if outliers:
        raise ValueError(
            "outliers: updates of a living mosaic do not run outlier detection (its flags depend on "
            "every exposure of a group); flag the inputs first (detect_outliers) and add the *_crf files"
        )
    if scheduler not in ("distributed", "serial"):
        raise ValueError(f"scheduler: expected 'distributed' or 'serial', got {scheduler!r}")
    location = as_location(mosaic, storage_options)
    remove = [remove] if isinstance(remove, str) else [str(r) for r in (remove or [])]
    exists = has_version(location)
    if not exists:
        if not is_living(location) and location.exists() and location.is_local and location.listdir():
            raise ValueError(f"{location}: exists and is not a living mosaic; refusing to touch it")
        if remove:
            raise ValueError(f"{location}: no living mosaic there to remove inputs from")
        if add is None:
            raise ValueError(f"{location}: a new living mosaic needs inputs (add=...)")
        if grid is None and output_wcs is None:
            raise ValueError(
                f"{location}: a new living mosaic needs its fixed grid (grid=GridSpec(...) or output_wcs=...)"
            )
    else:
        fixed = (("grid", grid), ("output_wcs", output_wcs), ("tile_shape", tile_shape))
        given = [n for n, v in fixed if v is not None]
        if given:
            raise ValueError(f"{location}: {', '.join(given)}: the grid of a living mosaic is fixed when it is created")
    if add is None and not remove:
        raise ValueError("update: nothing to do (give add=... or remove=...)")
    given_params = ResampleParams.from_kwargs(params, **param_kwargs) if (params is not None or param_kwargs) else None
    added_sources = sources_of(add, storage_options) if add is not None else []

    handle, client = connect_for_run(client, scheduler)
    try:
        for attempt in range(1, retries + 2):
            try:
                result = update_once(
                    location,
                    added_sources,
                    remove,
                    grid=grid,
                    output_wcs=output_wcs,
                    tile_shape=tile_shape,
                    params=given_params,
                    storage_options=storage_options,
                    client=client,
                    message=message,
                )
            except BaseMoved as moved:
                log.info("%s: %s; planning the update again on the newest version", location, moved)
                continue
            return replace(result, attempts=attempt, seconds=time.perf_counter() - t0)
    finally:
        if handle is not None:
            handle.close()
    raise LivingConflictError(
        f"{location}: {retries + 1} attempts, and each time another update was committed "
        "first; nothing of this update was committed"
    )
