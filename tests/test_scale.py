"""Survey-scale structure: graph size, where metadata is read, context by local depth, bounded memory.

These check the structure that keeps memory flat (counts and sizes, never timings);
the benchmark ``benchmarks/bench_scale.py`` measures the memory and speed themselves.
"""

from __future__ import annotations

import gc
import json
import warnings

import numpy as np
import pytest
from dask.sizeof import sizeof

import dask_resample
from dask_resample.api import plan_mosaic
from dask_resample.drizzle.reduce import TileAccumulator, output_arrays
from dask_resample.execution.graph import build_graph, drizzle_task, tile_task
from dask_resample.testing.synthetic_survey import SurveyLayout, write_survey

from .conftest import reference_resample

#: A small survey: 4 x 3 pointings, 2 dithers each, little overlap, mapped at half the pixel scale.
LAYOUT = SurveyLayout(grid_xy=(4, 3), dithers=2, shape=(48, 48), overlap=0.1)
PSR = {"wcs_pars": {"pixel_scale_ratio": 0.5}}


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return write_survey(tmp_path_factory.mktemp("survey"), LAYOUT, processes=1)


def _asn(survey):
    return getattr(survey, "asn_path", survey)


def test_task_count_is_proportional_to_the_overlaps(survey):
    plan = plan_mosaic(_asn(survey), tile_shape=(32, 32), **PSR)
    graph = build_graph(
        plan, store_path="unused.zarr", arrays=tuple(output_arrays(plan.params)), token="t", scratch_root="unused"
    )
    n_overlaps = sum(len(v) for v in plan.contributions.values())
    drizzles = [t for t in graph.dsk.values() if isinstance(t, tuple) and t[0] is drizzle_task]
    tiles = [t for t in graph.dsk.values() if isinstance(t, tuple) and t[0] is tile_task]
    assert len(drizzles) == len(plan.refs) == len(LAYOUT.exposures())
    assert len(tiles) == len(plan.contributions)
    assert len(graph.dsk) == len(drizzles) + len(tiles) + 2  # + the two shared specs, stored once
    # the edges are the overlaps: each tile depends on its contributors and nothing else
    assert sum(len(t[1]) for t in tiles) == n_overlaps
    # a survey is sparse: far fewer overlaps than inputs x tiles
    assert n_overlaps < 0.25 * len(plan.refs) * len(plan.contributions)
    # the output WCS travels by reference, not inside every task
    assert all(t[2] == graph.keys.drizzle_spec for t in drizzles)


def test_metadata_is_read_on_the_workers(survey, client, tmp_path):
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        dask_resample.resample(_asn(survey), tmp_path / "m.zarr", client=client, tile_shape=(64, 64), **PSR)
    described = [r for r in stream.data if "describe_sources" in str(r["key"])]
    n = len(LAYOUT.exposures())
    assert len(described) == -(-n // 16)  # batches of 16 files, each read on a worker
    workers = {r["worker"] for r in stream.data}
    assert workers and all(w.startswith("tcp://") for w in workers)


def test_context_by_local_depth_equals_the_reference(tmp_path_factory, tmp_path):
    """40 inputs (two planes) on a strip: tiles see one plane or two; con equals jwst's, unused chunks absent."""
    layout = SurveyLayout(grid_xy=(20, 1), dithers=2, shape=(40, 40), overlap=0.1)
    s = write_survey(tmp_path_factory.mktemp("strip"), layout, processes=1)
    ref = reference_resample(_asn(s))
    out = tmp_path / "m.zarr"
    ours = dask_resample.resample(_asn(s), out, scheduler="serial", tile_shape=(40, 64))
    assert ref.con.shape[0] == 2
    np.testing.assert_array_equal(ours["con"].values, ref.con)
    records = [json.loads(p.read_text()) for p in (out / "_progress").glob("*_*.json")]
    local = [r["ctx_planes"] for r in records]
    assert [0] in local and [1] in local and [0, 1] in local  # most tiles hold one plane only
    # chunks are written only for the planes a tile holds (and not when all zero)
    chunks = {
        p.relative_to(out / "con").parts[1:] for p in (out / "con").rglob("*") if p.is_file() and p.name != "zarr.json"
    }
    allowed = {(str(plane), str(r["tile"][0]), str(r["tile"][1])) for r in records for plane in r["ctx_planes"]}
    assert chunks <= allowed
    assert {c[0] for c in chunks} == {"0", "1"}
    n_tiles = int(np.prod([-(-n // t) for n, t in zip(ours["data"].shape, (40, 64), strict=True)]))
    assert len(chunks) < 2 * n_tiles  # the full layout would hold every plane of every tile


def test_nothing_large_waits_between_tasks(survey, tmp_path):
    """Drizzle and tile tasks hand on only small records, and no accumulator outlives its task."""
    import dask
    from dask.callbacks import Callback

    plan = plan_mosaic(_asn(survey), tile_shape=(32, 32), **PSR)
    sizes: dict = {}
    live: list[int] = []
    tiles_done = [0]

    def posttask(key, result, dsk, state, worker_id):
        sizes[key] = sizeof(result)
        if isinstance(key, tuple) and str(key[0]).startswith("tile-"):
            tiles_done[0] += 1
            # a full collection walks the whole heap: every 8th tile task (an accumulator that outlived
            # its task would still be there at the next check, as would every later one)
            if tiles_done[0] % 8 == 1:
                gc.collect()
                # type(), not isinstance: isinstance fails on dead weak proxies
                live.append(sum(type(o) is TileAccumulator for o in gc.get_objects()))

    with Callback(posttask=posttask), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dask.config.set(scheduler="sync"):
            dask_resample.resample(_asn(survey), tmp_path / "m.zarr", scheduler="serial", tile_shape=(32, 32), **PSR)
    task_sizes = [v for k, v in sizes.items() if isinstance(k, tuple)]
    assert len(task_sizes) == len(plan.refs) + len(plan.contributions)
    assert max(task_sizes) < 64 * 1024, max(task_sizes)  # records, not arrays
    assert live and max(live) == 0  # every accumulator is gone once its tile is written
