"""The package's import structure: no cycles between its modules (ARCHITECTURE.md's layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dask_resample"

pytestmark = pytest.mark.core


def _module_imports() -> dict[str, set[str]]:
    """Package-internal imports at module level, as ``module -> {imported modules}``."""
    edges: dict[str, set[str]] = {}
    for f in sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("*/*.py")]):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[:-1] if f.name != "__init__.py" else parts[:-1]
        name = ".".join(parts[:-1] if f.name == "__init__.py" else parts)
        deps: set[str] = set()
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    deps.add(".".join([*base, node.module]))
                else:
                    deps.update(".".join([*base, a.name]) for a in node.names)
        edges[name] = deps - {name}
    return edges


def test_no_import_cycles_between_modules():
    edges = _module_imports()
    assert "dask_resample.io" in edges and "dask_resample.drivers.plain_fits" in edges

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for dep in edges.get(node, ()):
                if dep == start:
                    return [*path, dep]
                if dep not in seen and dep != "dask_resample":
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
        return None

    cycles = [c for m in edges if m != "dask_resample" and (c := cycle_from(m))]
    assert not cycles, cycles[0]


def test_drivers_and_failures_sit_below_io():
    edges = _module_imports()
    for name in ("dask_resample.failures", "dask_resample.drivers.jwst_model", "dask_resample.drivers.plain_fits",
                 "dask_resample.drivers.in_memory", "dask_resample.drivers._fitsfile",
                 "dask_resample.drivers.roman_model"):
        assert "dask_resample.io" not in edges[name], name
    assert "dask_resample.graph" not in edges["dask_resample.kernel"]
