"""The Zarr v3 mosaic: layout, attributes, tile writes, progress markers, opening.

Layout of a many-to-one mosaic at ``path``::

    path/                 zarr group; attrs["dask_resample"] = metadata
      data  (y, x)        float32
      wht   (y, x)        float32
      con   (plane, y, x) int32
      err, var_rnoise, var_flat, var_poisson  (y, x) float32
      dq    (y, x)        uint32
      _progress/          one marker file per finished tile (written atomically)

A many-to-many mosaic holds one such group per exposure group (named by the
group id) under the root group, whose attributes list the groups.

One tile is exactly one chunk, so tiles are written concurrently without locks;
chunks that hold only the fill value are not written at all. Each array's fill
value is the reference's value at a pixel no input reaches
(:func:`dask_resample.reduce.empty_pixel_values`: ``fillval`` for ``data``,
``fillval / pixel_scale_ratio`` for a drizzled ``err``, NaN for variances, 0 for
``wht``, ``con`` and ``dq``), so tiles no input touches read as in the reference.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .geometry import gwcs_from_text

__all__ = [
    "MosaicExistsError",
    "StoreSpec",
    "create_store",
    "gwcs_from_attrs",
    "is_mosaic",
    "layout_problems",
    "open_mosaic",
    "read_metadata",
    "remove_partial_writes",
    "remove_stale_siblings",
    "scratch_sibling",
    "tile_marker",
    "tiles_done",
    "write_tile",
]

FORMAT_KEY = "dask_resample"
FORMAT_VERSION = 1
PROGRESS_DIR = "_progress"


class MosaicExistsError(FileExistsError):
    """The output path exists and may not be replaced."""


@dataclass(frozen=True)
class StoreSpec:
    """Where and how a tile task writes (small, picklable)."""

    path: str
    group: str
    arrays: tuple[str, ...]


def _group_path(group: str) -> str:
    return group or ""


def is_mosaic(path: str | os.PathLike) -> bool:
    """True if ``path`` is a Zarr group written by this package."""
    path = Path(path)
    meta = path / "zarr.json"
    if not meta.is_file():
        return False
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return FORMAT_KEY in doc.get("attributes", {})


def prepare_output(path: str | os.PathLike, overwrite: bool, resume: bool = False) -> Path:
    """Check that ``path`` may be (re)written; remove an old mosaic if allowed.

    Raises
    ------
    MosaicExistsError
        If ``path`` exists and is not a mosaic, or is one and ``overwrite`` is false.
    """
    path = Path(path)
    if not path.exists():
        return path
    if not is_mosaic(path):
        raise MosaicExistsError(f"{path}: exists and is not a dask-resample mosaic; refusing to touch it")
    if resume:
        return path
    if not overwrite:
        raise MosaicExistsError(f"{path}: mosaic exists; pass overwrite=True (--overwrite) to replace it")
    # rename first: a kill while deleting leaves no half-deleted mosaic at ``path``
    trash = _sibling(path, "trash")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return path


def gwcs_from_attrs(attrs: Mapping[str, Any]) -> Any:
    """The output gwcs stored in a mosaic's metadata."""
    meta = attrs.get(FORMAT_KEY, attrs)
    return gwcs_from_text(meta["wcs_asdf"])


def create_store(
    path: str | os.PathLike,
    *,
    groups: Mapping[str, Mapping[str, Any]],
    root_attrs: Mapping[str, Any],
    shape_yx: tuple[int, int],
    tile_shape_yx: tuple[int, int],
    arrays: Sequence[str],
    fill_values: Mapping[str, Any],
    many_to_many: bool,
) -> None:
    """Create the (empty) Zarr layout.

    Parameters
    ----------
    path : path-like
    groups : mapping
        ``group -> {"attrs": {...}, "n_ctx_planes": int}``; for many-to-one the
        single group ``""`` is the root.
    root_attrs : mapping
        Metadata stored under ``attrs["dask_resample"]`` of the root.
    shape_yx, tile_shape_yx : tuple of int
    arrays : sequence of str
        Array names to create.
    fill_values : mapping
        Array name -> value of a pixel no input reaches
        (:func:`dask_resample.reduce.empty_pixel_values`); it is the array's
        Zarr fill value, so chunks no input touches are never written.
    many_to_many : bool
    """
    import zarr
    from zarr.codecs import BloscCodec

    path = Path(path)
    if path.exists():
        raise MosaicExistsError(f"{path}: exists; remove it first (prepare_output)")
    # Build the layout beside the target and move it into place in one rename,
    # so that ``path`` is either absent or a complete, empty mosaic: a run
    # killed while creating it leaves nothing that resume could mistake for one.
    remove_stale_siblings(path)
    final_path, path = path, _sibling(path, "staging")
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs[FORMAT_KEY] = json.loads(json.dumps(dict(root_attrs), default=_json_default))
    compressors = [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
    for group, info in groups.items():
        g = root.create_group(group) if many_to_many else root
        if many_to_many:
            g.attrs[FORMAT_KEY] = json.loads(json.dumps(dict(info["attrs"]), default=_json_default))
        for name in arrays:
            if name == "con":
                # one chunk per plane and tile: planes no contributor of a tile sets are never written
                shape = (int(info["n_ctx_planes"]), *shape_yx)
                chunks = (1, *tile_shape_yx)
                dims = ("plane", "y", "x")
            else:
                shape, chunks, dims = shape_yx, tile_shape_yx, ("y", "x")
            g.create_array(
                name,
                shape=shape,
                chunks=chunks,
                dtype=np.asarray(fill_values[name]).dtype,
                fill_value=np.asarray(fill_values[name]).item(),
                dimension_names=dims,
                compressors=compressors,
                config={"write_empty_chunks": False},
            )
        g.create_group(PROGRESS_DIR, attributes={"description": "one marker per completed tile"})
    os.rename(path, final_path)


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unique sibling of ``path`` used while creating or removing it."""
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:12]}"


def scratch_sibling(path: str | os.PathLike, token: str) -> Path:
    """The hidden sibling of ``path`` holding a run's tile partials."""
    path = Path(path)
    return path.parent / f".{path.name}.scratch-{token}"


def remove_stale_siblings(path: str | os.PathLike, kinds: Sequence[str] = ("staging", "trash", "scratch")) -> list[Path]:
    """Remove half-created or half-removed copies of ``path``, and partials, left by killed runs.

    Returns
    -------
    list of Path
        What was removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for kind in kinds:
        for stale in path.parent.glob(f".{glob.escape(path.name)}.{kind}-*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def layout_problems(path: str | os.PathLike, groups: Sequence[str], arrays: Sequence[str]) -> list[str]:
    """What is missing from the Zarr layout of a mosaic (empty if it is whole).

    Parameters
    ----------
    path : path-like
    groups : sequence of str
        Group ids (``[""]`` for many-to-one).
    arrays : sequence of str
        Array names every group must hold.
    """
    path = Path(path)
    problems = []
    for group in groups:
        base = path / _group_path(group)
        for name in arrays:
            if not (base / name / "zarr.json").is_file():
                problems.append(f"array {group + '/' if group else ''}{name} missing")
        if not (base / PROGRESS_DIR).is_dir():
            problems.append(f"{group + '/' if group else ''}{PROGRESS_DIR} missing")
    return problems


def remove_partial_writes(path: str | os.PathLike) -> int:
    """Delete temporary files of chunk or marker writes interrupted by a kill.

    Returns
    -------
    int
        Number of files removed.
    """
    n = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for fn in filenames:
            if fn.endswith(".partial") or (fn.startswith(".tmp-") and os.path.basename(dirpath) == PROGRESS_DIR):
                try:
                    os.unlink(os.path.join(dirpath, fn))
                    n += 1
                except OSError:
                    pass
    return n


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def finalize_store(path: str | os.PathLike) -> None:
    """Consolidate metadata so that plain ``xarray.open_zarr(path)`` is fast."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def write_tile(
    spec: StoreSpec,
    y0: int,
    x0: int,
    ty: int,
    tx: int,
    arrays: Mapping[str, np.ndarray],
    record: dict[str, Any],
    ctx_planes: Sequence[int] = (0,),
) -> dict[str, Any]:
    """Write one tile's arrays into its chunks and mark the tile complete.

    The marker is written (atomically, by rename) only after every array is
    written, so a tile with a marker is complete.

    Parameters
    ----------
    spec : StoreSpec
    y0, x0 : int
        Position of the tile in the mosaic.
    ty, tx : int
        Tile index.
    arrays : mapping
        Finalised arrays; ``con`` holds only the planes ``ctx_planes`` of the
        mosaic's context (the others stay unwritten: zero).
    record : dict
        Small record stored in the marker.
    ctx_planes : sequence of int
        Planes of ``con`` held by ``arrays["con"]``.

    Returns
    -------
    dict
        The small record stored in the marker.
    """
    import zarr

    base = Path(spec.path)
    gpath = _group_path(spec.group)
    for name in spec.arrays:
        block = arrays[name]
        arr = zarr.open_array(str(base), path=f"{gpath}/{name}" if gpath else name, mode="r+")
        if name == "con":
            for local, plane in enumerate(ctx_planes):
                arr[plane, y0 : y0 + block.shape[1], x0 : x0 + block.shape[2]] = block[local]
        else:
            arr[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
    marker_dir = base / gpath / PROGRESS_DIR
    marker_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=marker_dir, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    os.replace(tmp, marker_dir / f"{ty}_{tx}.json")
    return record


def tile_marker(spec: StoreSpec, ty: int, tx: int) -> dict[str, Any] | None:
    """The completion record of a tile, or ``None`` if it is not complete."""
    marker = Path(spec.path) / _group_path(spec.group) / PROGRESS_DIR / f"{ty}_{tx}.json"
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def tiles_done(path: str | os.PathLike, group: str = "") -> dict[tuple[int, int], dict[str, Any]]:
    """Tiles of ``group`` marked complete, with their records."""
    marker_dir = Path(path) / _group_path(group) / PROGRESS_DIR
    done: dict[tuple[int, int], dict[str, Any]] = {}
    if not marker_dir.is_dir():
        return done
    for f in marker_dir.glob("*.json"):
        try:
            ty, tx = (int(v) for v in f.stem.split("_"))
            done[(ty, tx)] = json.loads(f.read_text())
        except (ValueError, OSError):
            continue
    return done


def read_metadata(path: str | os.PathLike, group: str | None = None) -> dict[str, Any]:
    """The ``dask_resample`` attributes of a mosaic (or of one of its groups)."""
    doc = json.loads((Path(path) / "zarr.json").read_text())
    meta = doc.get("attributes", {}).get(FORMAT_KEY)
    if meta is None:
        raise ValueError(f"{path}: not a dask-resample mosaic")
    if group:
        groups = meta.get("groups") or []
        if group not in groups:
            raise ValueError(f"{path}: no exposure group {group!r} in this mosaic; its groups are {groups}")
        gdoc = json.loads((Path(path) / group / "zarr.json").read_text())
        meta = {**meta, **gdoc.get("attributes", {}).get(FORMAT_KEY, {})}
    return meta


def open_mosaic(path: str | os.PathLike, group: str | None = None, level: int | None = None) -> Any:
    """Open a mosaic as a lazy :class:`xarray.Dataset`.

    Parameters
    ----------
    path : path-like
        The Zarr mosaic.
    group : str, optional
        For many-to-many mosaics, the exposure group to open.
    level : int, optional
        Pyramid level (0 is full resolution), where a pyramid was written.

    Returns
    -------
    xarray.Dataset
        Variables ``data``, ``wht``, ``con``, ``err``, ``var_*``, ``dq`` as written;
        ``attrs`` carries the metadata (WCS, parameters, inputs, totals).
    """
    import xarray as xr

    path = Path(path)
    if not is_mosaic(path):
        raise ValueError(f"{path}: not a dask-resample mosaic")
    meta = read_metadata(path, group)
    if meta.get("mode") == "many_to_many" and not group:
        raise ValueError(f"{path}: many-to-many mosaic; pass group= one of {meta.get('groups')}")
    zgroup = group or None
    if level:
        zgroup = f"{group}/levels/{level}" if group else f"levels/{level}"
        level_meta = path / zgroup / "zarr.json"
        if not level_meta.is_file():
            raise ValueError(f"{path}: no pyramid level {level}; write it with dask_resample.write_pyramid")
        # the level's own WCS and grid replace those of level 0
        meta = {**meta, **json.loads(level_meta.read_text()).get("attributes", {}).get(FORMAT_KEY, {})}
    ds = xr.open_zarr(str(path), group=zgroup, consolidated=False, chunks={})
    ds.attrs = {FORMAT_KEY: meta}
    return ds


def input_fingerprint(records: Sequence[Mapping[str, Any]], params: Mapping[str, Any], grid: Mapping[str, Any]) -> str:
    """A digest of inputs (names, sizes, mtimes), parameters and grid, used by resume."""
    h = hashlib.sha256()
    for rec in records:
        src = rec.get("source")
        stat = None
        if src and src != "<memory>" and os.path.exists(src):
            st = os.stat(src)
            stat = [st.st_size, st.st_mtime_ns]
        h.update(json.dumps([rec.get("filename"), src, rec.get("group_id"), stat], default=str).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(json.dumps(grid, sort_keys=True, default=str).encode())
    return h.hexdigest()
