"""Multiscale pyramid of a mosaic: 2x2 weight-aware downsampling, OME-NGFF metadata.

Level ``k`` (``k >= 1``) is written as the Zarr group ``levels/k`` inside the
mosaic group (the root of a many-to-one mosaic, or one exposure group of a
many-to-many mosaic), with the same array names and dimension names as level 0.
Each level-``k`` pixel covers the ``2**k x 2**k`` block of level-0 pixels whose
centre is at level-0 pixel ``2**k * i + (2**k - 1) / 2``. Level ``k`` is
computed from level ``k - 1`` block by block, with these rules (``w`` is the
weight of the finer level, ``S`` a sum over a 2x2 block):

========================  ==================================================
``data``                  ``S(w d) / S(w)`` over pixels with ``w != 0`` and
                          finite ``d``; the fill value where ``S(w) == 0``.
``wht``                   ``S(w)``.
``err``                   ``sqrt(S(w**2 err**2)) / S(w)`` (error of the
                          weighted mean of independent pixels).
``var_*``                 ``S(w**2 var) / S(w)**2``.
``con``, ``dq``           bitwise OR.
========================  ==================================================

Because ``data * wht`` of a level equals ``S(w d)`` of the finer level, the
total ``sum(data * wht)`` (the weighted flux) is the same at every level, and
applying the rule twice equals applying it once to 4x4 blocks. Drizzled
neighbours are correlated, so ``err`` and ``var_*`` of coarse levels are the
values for independent pixels, a lower bound.

The mosaic group's attributes get a ``multiscales`` list in the OME-NGFF style
(one entry per array, level 0 first, each with ``scale``/``translation``
transformations in level-0 pixels), also mirrored under ``ome`` as in OME-NGFF
0.5, so generic Zarr viewers can browse the levels. Levels are computed lazily
with Dask: every output chunk is a whole Zarr chunk, so no locks are needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..geometry import gwcs_from_text, subgrid_metadata
from ..store import (
    FORMAT_KEY,
    Location,
    as_location,
    finalize_store,
    is_mosaic,
    read_metadata,
)

if TYPE_CHECKING:
    import zarr

__all__ = ["LEVELS_GROUP", "level_shape", "n_levels_for", "write_pyramid"]

#: Name of the subgroup holding the levels.
LEVELS_GROUP = "levels"

#: Array order in the metadata (``data`` first: viewers show the first entry).
_ORDER = ("data", "wht", "err", "var_rnoise", "var_poisson", "var_flat", "dq", "con", "exptime")
_VAR = ("var_rnoise", "var_poisson", "var_flat")

METHOD = "weighted_mean_2x2"


def level_shape(shape_yx: Sequence[int], level: int) -> tuple[int, int]:
    """Shape of pyramid level ``level`` of a mosaic of shape ``shape_yx`` (ceil halving)."""
    ny, nx = (int(v) for v in shape_yx)
    for _ in range(int(level)):
        ny, nx = -(-ny // 2), -(-nx // 2)
    return ny, nx


def n_levels_for(shape_yx: Sequence[int], min_size: int) -> int:
    """Number of halvings until the larger side is at most ``min_size``."""
    n = 0
    shape = tuple(int(v) for v in shape_yx)
    while max(shape) > min_size:
        shape = level_shape(shape, 1)
        n += 1
    return n


# -- block reductions (NumPy, one Dask block) -----------------------------------
def _pad_even(a: np.ndarray, value: Any = 0) -> np.ndarray:
    pad_y = a.shape[-2] % 2
    pad_x = a.shape[-1] % 2
    if not (pad_y or pad_x):
        return a
    widths = [(0, 0)] * (a.ndim - 2) + [(0, pad_y), (0, pad_x)]
    return np.pad(a, widths, constant_values=value)


def _block_sum(a: np.ndarray) -> np.ndarray:
    a = _pad_even(a)
    ny, nx = a.shape[-2] // 2, a.shape[-1] // 2
    return a.reshape(*a.shape[:-2], ny, 2, nx, 2).sum(axis=(-3, -1))


def _block_or(a: np.ndarray) -> np.ndarray:
    a = _pad_even(a)
    ny, nx = a.shape[-2] // 2, a.shape[-1] // 2
    r = a.reshape(*a.shape[:-2], ny, 2, nx, 2)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(r, axis=-1), axis=-2)


def _valid_weight(values: np.ndarray, wht: np.ndarray) -> np.ndarray:
    w = wht.astype(np.float64)
    return np.where((w != 0) & np.isfinite(values), w, 0.0)


def _mean(data: np.ndarray, wht: np.ndarray, fill: float) -> np.ndarray:
    w = _valid_weight(data, wht)
    sw = _block_sum(w)
    swd = _block_sum(np.where(w != 0, data.astype(np.float64) * w, 0.0))
    ok = sw != 0
    return np.where(ok, swd / np.where(ok, sw, 1.0), fill).astype(np.float32)


def _wsum(wht: np.ndarray) -> np.ndarray:
    return _block_sum(wht.astype(np.float64)).astype(np.float32)


def _err(err: np.ndarray, wht: np.ndarray) -> np.ndarray:
    w = _valid_weight(err, wht)
    sw = _block_sum(w)
    s2 = _block_sum(np.where(w != 0, (w * err.astype(np.float64)) ** 2, 0.0))
    ok = sw != 0
    return np.where(ok, np.sqrt(s2) / np.where(ok, np.abs(sw), 1.0), np.nan).astype(np.float32)


def _var(var: np.ndarray, wht: np.ndarray) -> np.ndarray:
    w = _valid_weight(var, wht)
    sw = _block_sum(w)
    s2 = _block_sum(np.where(w != 0, w * w * var.astype(np.float64), 0.0))
    ok = sw != 0
    return np.where(ok, s2 / np.where(ok, sw * sw, 1.0), np.nan).astype(np.float32)


def _half_chunks(chunks: tuple[tuple[int, ...], ...], n_lead: int) -> tuple[tuple[int, ...], ...]:
    return tuple(c if i < n_lead else tuple(-(-v // 2) for v in c) for i, c in enumerate(chunks))


def downsample(arrays: dict[str, Any], tile_shape_yx: tuple[int, int], fill: float) -> dict[str, Any]:
    """One pyramid step on Dask arrays (lazy).

    Parameters
    ----------
    arrays : dict
        Name -> dask array of the finer level (must include ``wht`` for the
        weighted arrays).
    tile_shape_yx : (int, int)
        Chunk shape of the coarser level; inputs are rechunked to twice this,
        so every output block is exactly one output chunk.
    fill : float
        Fill value of ``data``.

    Returns
    -------
    dict
        Name -> dask array of the coarser level.
    """
    ty, tx = tile_shape_yx
    src = {}
    for name, a in arrays.items():
        lead = a.shape[:-2]
        src[name] = a.rechunk(tuple(lead) + (2 * ty, 2 * tx))
    wht = src.get("wht")
    out: dict[str, Any] = {}
    for name, a in src.items():
        n_lead = a.ndim - 2
        chunks = _half_chunks(a.chunks, n_lead)
        if name in ("con", "dq"):
            out[name] = a.map_blocks(_block_or, chunks=chunks, dtype=a.dtype)
        elif name == "wht":
            out[name] = a.map_blocks(_wsum, chunks=chunks, dtype=np.float32)
        elif wht is None:
            raise ValueError(f"{name}: the weighted mean needs the 'wht' array, which the mosaic lacks")
        elif name == "data":
            out[name] = a.map_blocks(_mean, wht, fill=fill, chunks=chunks, dtype=np.float32)
        elif name == "err":
            out[name] = a.map_blocks(_err, wht, chunks=chunks, dtype=np.float32)
        elif name in _VAR:
            out[name] = a.map_blocks(_var, wht, chunks=chunks, dtype=np.float32)
        elif name == "exptime":  # the weighted mean, 0 where nothing lands (as the map has it)
            out[name] = a.map_blocks(_mean, wht, fill=0.0, chunks=chunks, dtype=np.float32)
        else:
            raise ValueError(f"{name}: no downsampling rule for this array")
    return out


# -- metadata ------------------------------------------------------------------
def _transforms(level: int, n_lead: int) -> list[dict[str, Any]]:
    f = float(2**level)
    t = (f - 1.0) / 2.0
    lead = [1.0] * n_lead
    scale = {"type": "scale", "scale": lead + [f, f]}
    if level == 0:
        return [scale]
    return [scale, {"type": "translation", "translation": [0.0] * n_lead + [t, t]}]


def multiscales_metadata(names: list[str], levels: list[int]) -> list[dict[str, Any]]:
    """OME-NGFF style ``multiscales`` entries (one per array) for levels ``0..max(levels)``.

    Parameters
    ----------
    names : list of str
        Arrays of the mosaic group.
    levels : list of int
        Pyramid levels written (without 0).

    Returns
    -------
    list of dict
    """
    entries = []
    for name in sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER)):
        n_lead = 1 if name == "con" else 0
        axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
        if n_lead:
            axes = [{"name": "plane", "type": "channel"}, *axes]
        datasets = [{"path": name, "coordinateTransformations": _transforms(0, n_lead)}]
        datasets += [
            {"path": f"{LEVELS_GROUP}/{k}/{name}", "coordinateTransformations": _transforms(k, n_lead)} for k in levels
        ]
        entries.append(
            {
                "version": "0.4",
                "name": name,
                "axes": axes,
                "datasets": datasets,
                "type": METHOD,
                "metadata": {
                    "description": "2x2 blocks: weighted mean (weights 'wht') for data, sum for wht, "
                    "propagated error/variance for err/var_*, bitwise OR for con/dq",
                    "units": "coordinateTransformations are in level-0 mosaic pixels",
                },
            }
        )
    return entries


# -- writing --------------------------------------------------------------------
def _array(zg: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a group (whose members may also be groups)."""
    import zarr

    arr = zg[name]
    assert isinstance(arr, zarr.Array), name
    return arr


def _component(group: str, level: int, name: str) -> str:
    parts = [p for p in (group, f"{LEVELS_GROUP}/{level}" if level else "", name) if p]
    return "/".join(parts)


def _compute(delayed: Any, client: Any) -> None:
    import dask

    if client is not None:
        client.gather(client.compute(delayed))
    else:
        dask.compute(delayed)


def _write_group(path: Location, group: str, n_levels: int, client: Any) -> None:
    import dask.array as da
    import zarr

    store = path.zarr_store()
    root = zarr.open_group(store, mode="r+")
    zg = root[group] if group else root
    assert isinstance(zg, zarr.Group)
    meta = read_metadata(path, group or None)
    names = [n for n in zg.array_keys() if n in _ORDER]
    (path.join(group, LEVELS_GROUP) if group else path.join(LEVELS_GROUP)).remove()
    shape0 = tuple(int(v) for v in _array(zg, "data").shape) if "data" in names else _array(zg, names[0]).shape[-2:]
    ty, tx = (int(v) for v in _array(zg, names[0]).chunks[-2:])
    tile = (ty, tx)
    fill = float(_array(zg, "data").fill_value) if "data" in names else math.nan
    wcs0 = gwcs_from_text(meta["wcs_asdf"])
    level_group = zg.require_group(LEVELS_GROUP)
    for k in range(1, n_levels + 1):
        finer = {n: da.from_zarr(zarr.open_array(store, path=_component(group, k - 1, n), mode="r")) for n in names}
        coarse = downsample(finer, tile, fill)
        shape_k = level_shape(shape0, k)
        lg = level_group.create_group(str(k))
        targets: list[Any] = []  # zarr arrays (dask's annotation of store's targets names NumPy's array-likes)
        sources = []
        for name in names:
            ref = _array(zg, name)
            arr = coarse[name]
            assert arr.shape[-2:] == shape_k, (name, arr.shape, shape_k)
            target = lg.create_array(
                name,
                shape=arr.shape,
                chunks=tuple(ref.chunks[:-2]) + tile,
                dtype=ref.dtype,
                fill_value=ref.fill_value,
                dimension_names=tuple(getattr(ref.metadata, "dimension_names", None) or ()) or None,  # Zarr v3
                compressors=ref.compressors,
                config={"write_empty_chunks": False},
            )
            targets.append(target)
            sources.append(arr)
        _compute(da.store(sources, targets, lock=False, compute=False), client)
        f = 2**k
        sub = subgrid_metadata(meta, scale=float(f), offset_yx=((f - 1) / 2, (f - 1) / 2), shape_yx=shape_k, wcs=wcs0)
        lg.attrs[FORMAT_KEY] = {
            "level": k,
            "downsampling": METHOD,
            **{key: sub[key] for key in ("wcs_asdf", "wcs_fits", "grid", "subgrid") if key in sub},
        }
    levels = list(range(1, n_levels + 1))
    entries = multiscales_metadata(names, levels)
    zg.attrs["multiscales"] = entries
    zg.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{k: v for k, v in e.items() if k != "version"} for e in entries],
    }
    own = dict(cast("Mapping[str, Any]", zg.attrs.get(FORMAT_KEY, {})))
    own["pyramid"] = {"levels": levels, "method": METHOD, "group": LEVELS_GROUP}
    zg.attrs[FORMAT_KEY] = own


def write_pyramid(
    path: str | os.PathLike | Location,
    *,
    group: str | None = None,
    levels: int | None = None,
    min_size: int = 256,
    client: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[int]:
    """Write the downsampled levels of a mosaic (see the module docstring for the rules).

    Existing levels of the same group are replaced; level 0 is never touched.

    Parameters
    ----------
    path : path-like, URL or Location
        The Zarr mosaic (a local path or any fsspec URL).
    group : str, optional
        For a many-to-many mosaic, the exposure group; ``None`` writes levels
        for every group.
    levels : int, optional
        Number of levels below full resolution. Default: halve until the
        larger side is at most ``min_size`` pixels.
    min_size : int
        Size at which the default number of levels stops.
    client : distributed.Client, optional
        Compute on this client; default: the current Dask scheduler.
    storage_options : mapping, optional
        Options of the URL's file system (credentials, ``endpoint_url``).

    Returns
    -------
    list of int
        Levels written (``[1, ..., n]``); each opens with
        ``open_mosaic(path, group=group, level=k)``.

    Raises
    ------
    ValueError
        If ``path`` is not a mosaic, ``group`` is unknown, or ``levels`` /
        ``min_size`` is out of range.
    """
    path = as_location(path, storage_options)
    if not is_mosaic(path):
        raise ValueError(f"{path}: not a dask-resample mosaic")
    if int(min_size) < 1:
        raise ValueError(f"min_size: must be >= 1, got {min_size!r}")
    meta = read_metadata(path)
    if meta.get("mode") == "many_to_many":
        known = list(meta.get("groups", []))
        if group is not None and group not in known:
            raise ValueError(f"group: {group!r} is not one of {known}")
        groups = [group] if group is not None else known
    else:
        if group:
            raise ValueError(f"group: {path} is a many-to-one mosaic without groups")
        groups = [""]
    shape = tuple(int(v) for v in meta["grid"]["shape_yx"])
    n_max = n_levels_for(shape, 1)
    if levels is None:
        n = n_levels_for(shape, int(min_size))
    else:
        n = int(levels)
        if n < 0 or n > n_max:
            raise ValueError(f"levels: must be in [0, {n_max}] for a mosaic of shape {shape}, got {levels!r}")
    for g in groups:
        _write_group(path, g, n, client)
    finalize_store(path)
    return list(range(1, n + 1))
