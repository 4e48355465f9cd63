"""The survey writer: files readable by jwst's ModelLibrary, pointings overlapping as designed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dask_resample.testing.synthetic_survey import SurveyLayout, write_survey


def _corners(model):
    ny, nx = model.data.shape
    return np.column_stack(model.meta.wcs([-0.5, nx - 0.5, nx - 0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5]))


def test_layout_counts_and_overlaps():
    layout = SurveyLayout.for_count(2000, shape=(128, 128))
    assert layout.grid_xy == (40, 25)
    assert len(layout.exposures()) == 2000
    small = SurveyLayout(grid_xy=(3, 2), dithers=2, shape=(100, 100), overlap=0.1)
    exps = small.exposures()
    assert len(exps) == 12 and len({e.group_id for e in exps}) == 12
    # neighbours are one step apart; dithers move less than half the overlap
    step_x, _ = small.step_pixels
    assert step_x == pytest.approx(90.0)
    for e in exps:
        base_x = (e.col - 1) * step_x
        assert abs(e.offset_xy[0] - base_x) <= small.dither_px
    with pytest.raises(ValueError, match="no overlap"):
        SurveyLayout(shape=(100, 100), overlap=0.04, dither_pixels=3.0)


def test_files_readable_by_model_library(tmp_path):
    from jwst.datamodels import ModelLibrary

    layout = SurveyLayout(grid_xy=(2, 1), dithers=2, shape=(64, 64), overlap=0.1)
    asn = write_survey(tmp_path, layout, processes=2)
    members = json.loads(asn.read_text())["products"][0]["members"]
    assert len(members) == 4
    library = ModelLibrary(str(asn), on_disk=True)
    corners, groups = [], set()
    with library:
        for k in range(len(library)):
            model = library.borrow(k)
            assert model.data.shape == (64, 64)
            assert np.isfinite(model.data).mean() > 0.9
            assert model.meta.wcsinfo.s_region.startswith("POLYGON")
            groups.add(model.meta.group_id)
            corners.append(_corners(model))
            library.shelve(model, modify=False)
    assert len(groups) == 4
    # the two pointings overlap by about 10% of the field along the detector x axis
    left, right = corners[0], corners[2]
    width = np.hypot(*(left[1] - left[0]) * [np.cos(np.radians(left[0, 1])), 1.0])
    shift = np.hypot(*(right[0] - left[0]) * [np.cos(np.radians(left[0, 1])), 1.0])
    assert 0.85 < shift / width < 0.95
