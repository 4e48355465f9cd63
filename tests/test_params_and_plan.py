"""One parameter record drives every interface; a plan is an object that ``resample`` runs as it is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from dask_resample import MosaicPlan, ResampleParams, config, open_mosaic, plan_mosaic, resample
from dask_resample.cli.options import DRIZZLE_OPTIONS
from dask_resample.params import STEP_DEFAULTS, parameter_fields, step_defaults


def test_every_parameter_has_help_and_a_command_line_form():
    names = [f.name for f in parameter_fields()]
    assert names == [f.name for f in dataclasses.fields(ResampleParams) if f.name != "flag_name_map"]
    assert tuple(names) == ResampleParams.names()
    flags = [opt.flag for opt in DRIZZLE_OPTIONS]
    assert flags == [f.metadata["cli"].flag for f in parameter_fields()]
    for f in parameter_fields():
        assert f.metadata["help"], f.name


def test_command_line_defaults_are_the_record_defaults_with_the_step_overrides():
    step = step_defaults()
    record = ResampleParams()
    for name, value in step.items():
        assert value == STEP_DEFAULTS.get(name, getattr(record, name)), name
    assert step["good_bits"] == "~DO_NOT_USE+NON_SCIENCE"
    assert step["compute_err"] == "from_var"
    assert record.good_bits == 0 and record.compute_err is None


def test_choices_come_from_the_record():
    kernel = next(f for f in parameter_fields() if f.name == "kernel")
    option = next(o for o in DRIZZLE_OPTIONS if o.flag == "--kernel")
    assert option.choices == kernel.metadata["choices"]


def test_runtime_defaults_are_read_from_the_packaged_yaml():
    doc = yaml.safe_load(config.DEFAULTS_PATH.read_text())["resample"]
    assert config.DEFAULT_TILE_SHAPE == tuple(doc["tile-shape"])
    assert config.DEFAULT_MAX_OUTPUT_PIXELS == doc["max-output-pixels"]


def test_params_record_or_keywords_not_both(small_dataset, tmp_path):
    with pytest.raises(TypeError, match="not both"):
        resample(small_dataset.asn_path, tmp_path / "x.zarr", params=ResampleParams(), pixfrac=0.5, scheduler="serial")
    with pytest.raises(TypeError, match="unknown parameter"):
        resample(small_dataset.asn_path, tmp_path / "x.zarr", pixfrak=0.5, scheduler="serial")
    assert not (tmp_path / "x.zarr").exists()


def test_a_plan_runs_as_planned_and_equals_planning_inside_resample(small_dataset, tmp_path):
    kwargs = {"pixfrac": 0.8, "kernel": "turbo", "compute_err": "from_var"}
    plan = plan_mosaic(small_dataset.asn_path, tile_shape=(64, 64), **kwargs)
    assert isinstance(plan, MosaicPlan)
    text = repr(plan)
    assert text.startswith("<MosaicPlan many_to_one:") and f"{len(small_dataset.paths)} inputs" in text
    assert "inputs per tile:" in plan.summary()
    png = plan.coverage_png(tmp_path / "plan.png")
    assert png.read_bytes()[:4] == b"\x89PNG"

    a = resample(plan, tmp_path / "a.zarr", scheduler="serial")
    b = resample(
        small_dataset.asn_path,
        tmp_path / "b.zarr",
        scheduler="serial",
        tile_shape=(64, 64),
        params=ResampleParams(**kwargs),
    )
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name
    with pytest.raises(TypeError, match="plan_mosaic"):
        resample(plan, tmp_path / "c.zarr", scheduler="serial", kernel="square")
    assert open_mosaic(tmp_path / "a.zarr").attrs["dask_resample"]["params"]["kernel"] == "turbo"
