"""Many-to-many mosaics: one output per exposure group, all groups in one graph.

The oracle is ``jwst.resample.resample.ResampleImage.resample_many_to_many``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample import open_mosaic, plan_mosaic, resample
from dask_resample.drizzle.reduce import output_arrays
from dask_resample.execution.graph import build_graph, drizzle_task
from dask_resample.store import read_metadata

from .conftest import compare_arrays

jwst_datamodels = pytest.importorskip("jwst.datamodels")
jwst_resample = pytest.importorskip("jwst.resample.resample")

ARRAYS = ("data", "wht", "con", "var_rnoise", "var_flat", "var_poisson")


def reference_many_to_many(asn_path: Path | str, **kwargs) -> tuple[list[str], list]:
    """Group ids (``group_indices`` order) and in-memory outputs of the real jwst class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        library = jwst_datamodels.ModelLibrary(str(asn_path), on_disk=False)
        groups = list(library.group_indices)
        result = jwst_resample.ResampleImage(library, **kwargs).resample_many_to_many(in_memory=True)
        models = []
        with result:
            for i in range(len(result)):
                model = result.borrow(i)
                models.append(model)
                result.shelve(model, i, modify=False)
    return groups, models


def interleaved_asn(dataset, directory: Path) -> Path:
    """An association listing the dataset's exposures with groups interleaved (last group first)."""
    asn = json.loads(Path(dataset.asn_path).read_text())
    members = asn["products"][0]["members"]
    by_group: dict[str, list[dict]] = {}
    for member, gid in zip(members, dataset.group_ids, strict=True):
        member = dict(member)
        member["expname"] = str(Path(dataset.directory) / member["expname"])
        by_group.setdefault(gid, []).append(member)
    order = list(reversed(list(by_group)))
    interleaved = []
    for rank in range(max(len(v) for v in by_group.values())):
        for gid in order:
            if rank < len(by_group[gid]):
                interleaved.append(by_group[gid][rank])
    asn["products"][0]["members"] = interleaved
    path = directory / "interleaved_asn.json"
    path.write_text(json.dumps(asn))
    return path


@pytest.mark.parametrize("dataset_name", ["small_dataset", "single_detector_dataset"])
def test_per_group_parity_with_reference(request, dataset_name, client, tmp_path):
    dataset = request.getfixturevalue(dataset_name)
    out = tmp_path / "m2m.zarr"
    result = resample(dataset.asn_path, out, mode="many_to_many", client=client, tile_shape=(64, 64))
    groups, ref_models = reference_many_to_many(dataset.asn_path)

    assert list(result) == groups
    table = {}
    for gid, ref in zip(groups, ref_models, strict=True):
        ds = result[gid]
        table[gid] = {name: compare_arrays(ds[name].values, getattr(ref, name), f"{gid}/{name}") for name in ARRAYS}
    print(f"\nper-group largest |diff| / max ({dataset_name}):")
    for gid, row in table.items():
        print(f"  {gid}: " + ", ".join(f"{k}={v:.2e}" for k, v in row.items()))


@pytest.mark.filterwarnings("ignore:Input association file contains path information")
def test_group_order_and_context_bits_follow_reference(small_dataset, client, tmp_path):
    asn_path = interleaved_asn(small_dataset, tmp_path)
    library = jwst_datamodels.ModelLibrary(str(asn_path), on_disk=True)
    expected_groups = list(library.group_indices)
    # the interleaved association puts the last group first
    assert expected_groups == list(reversed(list(dict.fromkeys(small_dataset.group_ids))))
    assert all(len(v) == 2 and v[1] - v[0] == len(expected_groups) for v in library.group_indices.values())

    out = tmp_path / "interleaved.zarr"
    result = resample(asn_path, out, mode="many_to_many", client=client)
    assert list(result) == expected_groups
    groups, ref_models = reference_many_to_many(asn_path)
    assert groups == expected_groups
    for gid, ref in zip(groups, ref_models, strict=True):
        con = result[gid]["con"].values
        compare_arrays(con, ref.con, f"{gid}/con")
        # bits numbered within the group: two members -> bits 0 and 1 only, both used
        assert con.shape[0] == 1
        assert set(np.unique(con)) <= {0, 1, 2, 3}
        assert (con & 1).any() and (con & 2).any()
        for name in ("data", "wht", "var_rnoise"):
            compare_arrays(result[gid][name].values, getattr(ref, name), f"{gid}/{name}")

    inputs = read_metadata(out)["inputs"]
    bits = {row["index"]: row["context_bit"] for row in inputs}
    for indices in library.group_indices.values():
        assert [bits[i] for i in indices] == list(range(len(indices)))


def test_open_mosaic_by_group_and_root_attributes(single_detector_dataset, client, tmp_path):
    out = tmp_path / "groups.zarr"
    result = resample(single_detector_dataset.asn_path, out, mode="many_to_many", client=client)
    groups = list(dict.fromkeys(single_detector_dataset.group_ids))
    assert len(groups) == 4

    root = read_metadata(out)
    assert root["mode"] == "many_to_many"
    assert root["groups"] == groups
    with pytest.raises(ValueError, match="group="):
        open_mosaic(out)
    with pytest.raises(ValueError, match="no exposure group 'nope'"):
        open_mosaic(out, group="nope")
    for k, gid in enumerate(groups):
        ds = open_mosaic(out, group=gid)
        meta = ds.attrs["dask_resample"]
        assert meta["group_id"] == gid
        assert [row["index"] for row in meta["inputs"]] == [k]
        assert meta["totals"]["pointings"] == 1
        assert ds["data"].dims == ("y", "x") and ds["con"].dims == ("plane", "y", "x")
        assert ds["data"].shape == tuple(root["grid"]["shape_yx"])
        np.testing.assert_array_equal(ds["wht"].values, result[gid]["wht"].values)
        # each group saw only its own exposure
        assert set(np.unique(ds["con"].values)) <= {0, 1}


def _ancestors(deps: dict, key) -> set:
    seen: set = set()
    stack = [key]
    while stack:
        for d in deps[stack.pop()]:
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen


def test_groups_are_independent_branches_of_one_graph(small_dataset):
    from dask.core import get_dependencies, reverse_dict

    plan = plan_mosaic(small_dataset.asn_path, mode="many_to_many", tile_shape=(64, 64))
    graph = build_graph(
        plan,
        store_path="unused.zarr",
        arrays=tuple(output_arrays(plan.params)),
        token="t",
        scratch_root="unused-scratch",
    )
    dsk, write_keys = graph.dsk, graph.tile_keys
    shared = {graph.keys.drizzle_spec, graph.keys.scratch}  # stored once, used by every branch
    deps = {key: get_dependencies(dsk, key) - shared for key in dsk}
    dependents = reverse_dict(deps)
    assert len(plan.groups) == 3

    # one drizzle task (hence one pixel map) per exposure
    drizzle_tasks = {key: task for key, task in dsk.items() if isinstance(task, tuple) and task[0] is drizzle_task}
    exposures = sorted(task[1].index for task in drizzle_tasks.values())
    assert exposures == list(range(len(plan.refs)))

    group_of_key = {key: key[1] for key in write_keys}
    branch: dict[str, set] = {g: set() for g in plan.groups}
    for key in write_keys:
        ancestors = _ancestors(deps, key)
        branch[group_of_key[key]] |= ancestors | {key}
        used = {dsk[a][1].index for a in ancestors if a in drizzle_tasks}
        assert used and used <= set(plan.members[group_of_key[key]])
    assert {g for g in branch if branch[g]} == set(plan.groups)
    # branches share no task: no path from one group to another
    groups = list(plan.groups)
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            assert not (branch[groups[a]] & branch[groups[b]])
    # every task belongs to exactly one branch, and a drizzle task feeds only its group's writes
    assert sum(len(v) for v in branch.values()) == len(dsk) - len(shared)
    for key in drizzle_tasks:
        assert dsk[key][2] == graph.keys.drizzle_spec  # the output WCS and parameters by reference
        reached = _ancestors(dependents, key)
        assert {group_of_key[k] for k in reached if k in group_of_key} == {plan.refs[key[1]].group_id}
