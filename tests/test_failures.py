"""Failures as values: what ``worker_task`` passes on, captures and keeps for ``--debug``."""

from __future__ import annotations

import logging
import pickle

import pytest

from dask_resample.inputs.failures import TaskFailure, TileTaskError, one_line_message, worker_task
from dask_resample.inputs.records import InputError

pytestmark = pytest.mark.core


@worker_task(lambda name, upstream=(): f"{name}: dividing failed")
def _divide(name: str, upstream: tuple = ()) -> float:
    if name == "bad input":
        raise InputError(f"{name}: not an image")
    return 1 / 0


def test_an_unexpected_exception_keeps_its_context_and_traceback():
    failure = _divide("a.fits")
    assert isinstance(failure, TaskFailure) and not failure.input_error
    assert failure.message == "a.fits: dividing failed: ZeroDivisionError: division by zero"
    assert "return 1 / 0" in failure.traceback and "ZeroDivisionError" in failure.traceback
    assert pickle.loads(pickle.dumps(failure)) == failure  # travels from the workers


def test_an_input_error_is_its_own_message():
    failure = _divide("bad input")
    assert failure == TaskFailure("bad input: not an image", True)
    with pytest.raises(InputError, match="^bad input: not an image$"):
        failure.raise_()


def test_upstream_failures_pass_unchanged():
    upstream = TaskFailure("x.fits: broken", True)
    assert _divide("a.fits", (None, upstream)) is upstream
    assert _divide("a.fits", upstream=[upstream]) is upstream


def test_the_traceback_is_logged_at_debug_level(caplog):
    failure = _divide("a.fits")
    with caplog.at_level(logging.DEBUG, logger="dask_resample"), pytest.raises(RuntimeError, match="a.fits"):
        failure.raise_()
    assert "worker traceback" in caplog.text and "return 1 / 0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dask_resample"), pytest.raises(RuntimeError):
        failure.raise_()
    assert "worker traceback" not in caplog.text


def test_tile_errors_read_as_their_message():
    assert one_line_message(TileTaskError("tile 0,1: a.fits: broken")) == "tile 0,1: a.fits: broken"
    assert one_line_message(ValueError("bad\nmore")) == "ValueError: bad"
