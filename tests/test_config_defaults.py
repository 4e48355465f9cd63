"""Run-time defaults live in ``resample.yaml`` only: the code and the help texts read them from dask.config."""

from __future__ import annotations

import ast
from pathlib import Path

import dask.config
import pytest
import yaml

from dask_resample import cli, config

pytestmark = pytest.mark.core

PACKAGE = Path(config.__file__).parent

#: Modules that still pass a literal default to ``config.get`` (to be read from resample.yaml instead).
_NOT_YET: set[str] = set()


def test_get_falls_back_to_the_packaged_defaults():
    packaged = yaml.safe_load(config.DEFAULTS_PATH.read_text())["resample"]
    assert config.get("jobqueue.wait-timeout") == packaged["jobqueue"]["wait-timeout"]
    with dask.config.set({"resample": {"cluster": "slurm"}}):  # replaces the whole namespace
        assert config.get("cluster") == "slurm"
        assert config.get("local.dashboard-address") == packaged["local"]["dashboard-address"]
        assert config.get("tile-shape") == packaged["tile-shape"]
    assert config.get("no-such-key") is None
    assert config.get("no-such-key", 3) == 3


def test_help_texts_show_the_configured_defaults(capsys):
    with dask.config.set(
        {
            "resample.tile-shape": [256, 128],
            "resample.local.threads-per-worker": 3,
            "resample.max-output-pixels": 2 * 10**9,
        }
    ):
        assert cli.main(["run", "--help"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "(default 256 128)" in flat
    assert "threads per worker (default 3)" in flat
    assert "(default 2e9)" in flat


def test_config_get_is_given_no_literal_default():
    """``config.get(key, <literal>)`` would repeat a default of resample.yaml."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name in _NOT_YET:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "config"
                and len(node.args) + len(node.keywords) > 1
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders
