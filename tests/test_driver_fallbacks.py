"""What a driver cannot read from a WCS or an S_REGION is said, with the file and the reason; bugs propagate."""

from __future__ import annotations

import logging

import pytest

from dask_resample.inputs.drivers import _wcs

pytestmark = pytest.mark.core


class _NoInverse:
    """A WCS whose inverse transform is missing (or fails in another way)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def world_to_pixel_values(self, ra: float, dec: float) -> tuple[float, float]:
        raise self.error

    def pixel_to_world_values(self, x: float, y: float) -> tuple[float, float]:
        return 10.0, 20.0


def test_parity_without_inverse_is_assumed_and_said(caplog):
    with caplog.at_level(logging.WARNING, logger="dask_resample"):
        assert _wcs._parity(_NoInverse(NotImplementedError("no inverse")), 10.0, 20.0, "a_cal.fits") == -1
    assert "a_cal.fits" in caplog.text and "no inverse" in caplog.text and "parity" in caplog.text


def test_parity_bug_propagates():
    with pytest.raises(TypeError):
        _wcs._parity(_NoInverse(TypeError("a bug")), 10.0, 20.0, "a_cal.fits")


def test_missing_pixel_area_is_said(monkeypatch, caplog):
    import stcal.resample.utils

    def no_area(wcs, shape=None):
        raise ValueError("degenerate outline")

    monkeypatch.setattr(stcal.resample.utils, "compute_mean_pixel_area", no_area)
    with caplog.at_level(logging.WARNING, logger="dask_resample"):
        assert _wcs.mean_pixel_area(object(), (10, 10), source="b_cal.fits") is None
    assert "b_cal.fits" in caplog.text and "degenerate outline" in caplog.text
    monkeypatch.setattr(stcal.resample.utils, "compute_mean_pixel_area", lambda wcs, shape=None: None)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dask_resample"):
        assert _wcs.mean_pixel_area(object(), (10, 10), source="c_cal.fits") is None
    assert "c_cal.fits" in caplog.text


def test_pixel_area_bug_propagates(monkeypatch):
    import stcal.resample.utils

    def broken(wcs, shape=None):
        raise KeyError("a bug")

    monkeypatch.setattr(stcal.resample.utils, "compute_mean_pixel_area", broken)
    with pytest.raises(KeyError):
        _wcs.mean_pixel_area(object(), (10, 10), source="b_cal.fits")


def test_unreadable_s_region_is_said(caplog):
    from dask_resample.inputs.drivers.jwst_model import _outline_from_s_region

    assert len(_outline_from_s_region("POLYGON ICRS 1 2 3 4 5 6", "d_cal.fits")) == 3
    with caplog.at_level(logging.WARNING, logger="dask_resample"):
        assert _outline_from_s_region("POLYGON ICRS 1 2 3", "d_cal.fits") == ()
    assert "d_cal.fits" in caplog.text and "S_REGION" in caplog.text
