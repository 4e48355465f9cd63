"""Storage: the one owner of paths and URLs.

* :mod:`~dask_resample.store.location`: :class:`Location`, a local path or any
  fsspec URL with its storage options, and object-store-safe whole writes;
* :mod:`~dask_resample.store.mosaic`: the Zarr layout of a mosaic, its format keys and
  metadata;
* :mod:`~dask_resample.store.tile_writes`: a tile task's writes and the progress markers;
* :mod:`~dask_resample.store.shard_tasks`: sharded mosaics (tiles encoded for their
  shard, whole-shard writes, the shard indexes); :mod:`~dask_resample.store.shard_writer`
  assembles a shard, :mod:`~dask_resample.store.shard_index` keeps a finished mosaic's
  indexes in one object;
* :mod:`~dask_resample.store.replacement`: an existing output refused, removed or
  replaced, and the fingerprint resume compares;
* :mod:`~dask_resample.store.reading`: ``open_mosaic``;
* :mod:`~dask_resample.store.living`: a living mosaic's icechunk repository.
"""

from ..geometry import gwcs_from_text
from .location import (
    Location,
    StorageError,
    as_location,
    check_output_location,
    is_url,
)
from .mosaic import (
    COMPLETE_KEY,
    FORMAT_KEY,
    FORMAT_VERSION,
    PROGRESS_DIR,
    MosaicExistsError,
    StoreSpec,
    _group_path,  # noqa: F401 - for outliers; private, so not in __all__
    create_store,
    finalize_store,
    gwcs_from_attrs,
    is_complete,
    is_mosaic,
    layout_problems,
    mark_complete,
    read_metadata,
    remove_partial_writes,
    remove_stale_siblings,
    scratch_sibling,
)
from .reading import open_mosaic
from .replacement import (
    check_output,
    finish_interrupted_swap,
    input_fingerprint,
    prepare_output,
    replacement,
    swap_in,
)
from .shard_tasks import (
    encode_tile_chunks,
    index_shards,
    read_encoded_tile,
    shard_codecs,
    write_encoded_tile,
    write_shard,
)
from .tile_writes import shard_marker, tile_marker, tiles_done, write_tile

__all__ = [
    "COMPLETE_KEY",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "PROGRESS_DIR",
    "Location",
    "MosaicExistsError",
    "StorageError",
    "StoreSpec",
    "as_location",
    "check_output",
    "check_output_location",
    "create_store",
    "encode_tile_chunks",
    "finalize_store",
    "finish_interrupted_swap",
    "gwcs_from_attrs",
    "gwcs_from_text",
    "index_shards",
    "input_fingerprint",
    "is_complete",
    "is_mosaic",
    "is_url",
    "layout_problems",
    "mark_complete",
    "open_mosaic",
    "prepare_output",
    "read_encoded_tile",
    "read_metadata",
    "remove_partial_writes",
    "remove_stale_siblings",
    "replacement",
    "scratch_sibling",
    "shard_codecs",
    "shard_marker",
    "swap_in",
    "tile_marker",
    "tiles_done",
    "write_encoded_tile",
    "write_shard",
    "write_tile",
]
