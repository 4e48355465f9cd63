"""Every notebook runs top to bottom and shows its figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: Figures each notebook must show (see notebooks/README.md).
MIN_FIGURES = {
    "01_quickstart.ipynb": 3,
    "02_many_to_many.ipynb": 3,
    "03_scaling.ipynb": 2,
    "04_outliers.ipynb": 4,
    "05_living_mosaic.ipynb": 4,
    "06_roman_skycells.ipynb": 3,
}

KERNEL_NAME = "dask-resample-tests"


@pytest.fixture()
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernelspec that runs this interpreter (the project's environment), found first on JUPYTER_PATH."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dask-resample tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


def test_every_notebook_is_listed():
    assert {p.name for p in NOTEBOOKS} == set(MIN_FIGURES)
    readme = (NOTEBOOK_DIR / "README.md").read_text()
    for name in MIN_FIGURES:
        assert name in readme


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_name: str, tmp_path: Path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=600,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 1
    assert len(pngs) >= MIN_FIGURES[path.name], f"{path.name}: {len(pngs)} figures"
