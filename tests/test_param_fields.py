"""Python and the command line accept exactly the same parameter values.

For every field of :class:`~dask_resample.ResampleParams` and
:class:`~dask_resample.OutlierParams`, each candidate value is given

* to the record in Python, as text and as the value an option file holds,
* on the command line (``plan`` for the drizzle parameters, ``outliers`` for
  outlier detection), as text after the field's flag,
* in an option file (``--config``),

and all of them accept it, or all refuse it with one line naming the parameter.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from astropy.io import fits

from dask_resample import OutlierParams, ResampleParams, cli
from dask_resample.param_fields import record_fields

pytestmark = pytest.mark.core

#: Candidate values as a user types them (command line) or writes them in YAML (option files).
TEXTS: dict[str, list[str]] = {
    "pixfrac": ["0.5", "1", "1.0", "0", "1.5", "-1", "nan", "x", "''"],
    "kernel": ["square", "point", "turbo", "gaussian", "lanczos2", "lanczos3", "Square", "bicubic", "1", "''"],
    "fillval": ["NAN", "INDEF", "nan", "0", "-1.5", "1e30", "abc", "''"],
    "weight_type": ["ivm", "exptime", "IVM", "x", "1"],
    "good_bits": [
        "0",
        "4",
        "~DO_NOT_USE",
        "'~DO_NOT_USE+NON_SCIENCE'",
        "DO_NOT_USE,NON_SCIENCE",
        "none",
        "NOT_A_FLAG",
        "4.5",
        "x+",
    ],
    "compute_err": ["from_var", "driz_err", "none", "x", "1"],
    "pixmap_stepsize": ["1", "2.5", "10", "0", "-1", "inf", "x"],
    "pixmap_order": ["1", "3", "2", "0", "1.0", "3.0", "x", "-1"],
    "maskpt": ["0.7", "0", "1", "-3", "inf", "x"],
    "snr": ["'5.0 4.0'", "'5 4'", "'5,4'", "[5, 4]", "5", "'5 x'", "'inf 1'", "'1 2 3'"],
    "scale": ["'1.2 0.7'", "'1 1'", "[1.2, 0.7]", "1", "'a b'"],
    "backg": ["0", "0.5", "-2", "inf", "x"],
}

#: Values of on/off parameters (in Python and option files; on the command line the flag is given or not).
SWITCH_VALUES: list[Any] = [True, False, "yes", "true", 1, 0, None, "x"]


def _records() -> list[tuple[type, dataclasses.Field]]:
    return [(record, f) for record in (ResampleParams, OutlierParams) for f in record_fields(record)]


def test_every_field_has_candidate_values():
    for record, f in _records():
        form = f.metadata["cli"]
        assert form.is_switch or f.name in TEXTS, f"{record.__name__}.{f.name}: add candidate values"


def _python(record: type, name: str, value: Any) -> tuple[bool, Any]:
    """(accepted, record or error message) of ``record(name=value)``."""
    try:
        return True, record(**{name: value})
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        assert message.startswith(f"{name}:"), message
        return False, message


@pytest.fixture
def command_line(tmp_path, monkeypatch, capsys):
    """Run ``plan``/``outliers`` with the API stubbed: returns (status, stderr, record built)."""
    import dask_resample.api
    import dask_resample.inputs.io
    import dask_resample.outliers

    built: dict[str, Any] = {}

    class _Plan:
        def summary(self) -> str:
            return "plan"

    def plan_mosaic(inputs: Any, **kwargs: Any) -> _Plan:
        built["record"] = kwargs["params"]
        return _Plan()

    def detect_outliers(inputs: Any, output_dir: Any, **kwargs: Any) -> list[Path]:
        built["record"] = kwargs["params"]
        return []

    monkeypatch.setattr(dask_resample.api, "plan_mosaic", plan_mosaic)
    monkeypatch.setattr(dask_resample.outliers, "detect_outliers", detect_outliers)
    inputs = tmp_path / "a.fits"  # a real plain FITS image (the inputs are resolved before the stubbed calls)
    header = fits.Header(
        {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CRPIX1": 4.0,
            "CRPIX2": 4.0,
            "CRVAL1": 10.0,
            "CRVAL2": 20.0,
            "CDELT1": -1e-5,
            "CDELT2": 1e-5,
        }
    )
    fits.PrimaryHDU(np.ones((8, 8), np.float32), header=header).writeto(inputs)

    def run(record: type, args: list[str]) -> tuple[int, str, Any]:
        built.clear()
        command = (
            ["plan", str(inputs)]
            if record is ResampleParams
            else ["outliers", str(inputs), "-o", str(tmp_path / "out"), "--serial"]
        )
        code = cli.main([*command, *args])
        err = capsys.readouterr().err
        return code, err, built.get("record")

    return run


def _same(a: Any, b: Any, name: str) -> bool:
    """Whether two records hold the same value of ``name`` (the command line's other defaults aside)."""
    return getattr(a, name) == getattr(b, name)


def _config(tmp_path: Path, key: str, yaml_text: str) -> Path:
    path = tmp_path / "options.yaml"
    path.write_text(f"{key}: {yaml_text}\n")
    return path


@pytest.mark.parametrize(
    ("record", "field"),
    [(r, f) for r, f in _records() if not f.metadata["cli"].is_switch],
    ids=lambda x: getattr(x, "__name__", None) or getattr(x, "name", None),
)
def test_values_are_accepted_or_refused_alike(record, field, command_line, tmp_path):
    name, form = field.name, field.metadata["cli"]
    for text in TEXTS[name]:
        value = yaml.safe_load(f"v: {text}")["v"]  # what an option file holds
        as_text = text.strip("'") if not isinstance(value, list) else None
        outcomes = {}
        ok, py_record = _python(record, name, value)
        outcomes["python value"] = ok
        if as_text is not None:
            ok, py_text_record = _python(record, name, as_text)
            outcomes["python text"] = ok
            code, err, cli_record = command_line(record, [f"{form.flag}={as_text}"])
            outcomes["command line"] = code == 0
            if code == 0:
                assert _same(cli_record, py_text_record, name), (name, text)
            else:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("dask-resample: error:"), err
                assert name in lines[0] or form.flag in lines[0], lines[0]
        code, err, file_record = command_line(record, ["--config", str(_config(tmp_path, form.dest, text))])
        outcomes["option file"] = code == 0
        if code == 0:
            assert _same(file_record, py_record, name), (name, text)
        else:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and name in lines[0], err
        assert len(set(outcomes.values())) == 1, f"{record.__name__}.{name} = {text}: {outcomes}"


@pytest.mark.parametrize(
    ("record", "field"),
    [(r, f) for r, f in _records() if f.metadata["cli"].is_switch],
    ids=lambda x: getattr(x, "__name__", None) or getattr(x, "name", None),
)
def test_switches_are_accepted_or_refused_alike(record, field, command_line, tmp_path):
    name, form = field.name, field.metadata["cli"]
    for value in [*SWITCH_VALUES, np.True_]:
        ok, _ = _python(record, name, value)
        assert ok == isinstance(value, (bool, np.bool_)), (name, value)
        # an option file may name the parameter (enable_ctx) or the flag (no_ctx, inverted)
        keys = {name: value} if not form.negate else {name: value, form.dest: value}
        for key, given in keys.items():
            text = yaml.safe_dump(given.item() if isinstance(given, np.bool_) else given).split("\n...")[0].strip()
            code, err, file_record = command_line(record, ["--config", str(_config(tmp_path, key, text))])
            assert (code == 0) == ok, (name, key, value, err)
            if code == 0:
                expected = value if key == name else not value
                assert getattr(file_record, name) is bool(expected), (name, key, value)
            else:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and key in lines[0], err
    # on the command line, the flag sets the value that is not the default
    code, err, flagged = command_line(record, [form.flag])
    assert code == 0, err
    assert getattr(flagged, name) is (not form.negate)


def test_pixmap_order_is_checked_as_stcal_uses_it():
    """Any order at step 1 (stcal ignores it there, as the reference does), 1 or 3 otherwise."""
    for record in (ResampleParams, OutlierParams):
        assert record(pixmap_order=2, pixmap_stepsize=1).pixmap_order == 2
        for stepsize in (4, 0.5):
            with pytest.raises(ValueError, match="^pixmap_order:"):
                record(pixmap_order=2, pixmap_stepsize=stepsize)
            assert record(pixmap_order=3, pixmap_stepsize=stepsize).pixmap_order == 3
        assert record(pixmap_order="3").pixmap_order == 3
        for bad in (-1, 1.5, True):
            with pytest.raises(ValueError, match="^pixmap_order:"):
                record(pixmap_order=bad)


def test_shared_fields_are_defined_once():
    """The drizzle parameters of both records have one command-line form and one check."""
    outlier = {f.name: f for f in record_fields(OutlierParams)}
    shared = [f for f in record_fields(ResampleParams) if f.name in outlier]
    assert [f.name for f in shared] == [
        "pixfrac",
        "kernel",
        "fillval",
        "weight_type",
        "good_bits",
        "pixmap_stepsize",
        "pixmap_order",
    ]
    for f in shared:
        assert f.metadata["cli"] is outlier[f.name].metadata["cli"], f.name
        assert f.metadata["check"] is outlier[f.name].metadata["check"], f.name


def test_text_is_read_as_the_command_line_reads_it():
    params = ResampleParams(pixfrac="0.5", compute_err="none", good_bits="none", pixmap_stepsize="2")
    assert params.pixfrac == 0.5 and params.compute_err is None and params.good_bits is None
    assert params.pixmap_stepsize == 2.0
    assert math.isnan(ResampleParams(fillval=None).fill_value)
