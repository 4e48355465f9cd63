"""The package's import structure: no cycles between its modules (ARCHITECTURE.md's layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dask_resample"

pytestmark = pytest.mark.core


def _module_imports() -> dict[str, set[str]]:
    """Package-internal imports at module level, as ``module -> {imported modules}``, at every depth."""
    edges: dict[str, set[str]] = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[:-1]  # the package a module's relative imports start from (an __init__'s own)
        name = ".".join(parts[:-1] if f.name == "__init__.py" else parts)
        deps: set[str] = set()
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                source = [*base, *(node.module.split(".") if node.module else [])]
                if node.module:
                    deps.add(".".join(source))
                # ``from .. import x`` and ``from ..pkg import x``: x when it is a module of the package
                deps.update(".".join([*source, a.name]) for a in node.names
                            if not node.module or _is_module([*source, a.name]))
        edges[name] = deps - {name}
    return edges


def _is_module(parts: list[str]) -> bool:
    path = PACKAGE.parent.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_no_import_cycles_between_modules():
    edges = _module_imports()
    assert "dask_resample.inputs.io" in edges and "dask_resample.inputs.drivers.plain_fits" in edges

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
    for name in ("dask_resample.inputs.failures", "dask_resample.inputs.drivers.jwst_model",
                 "dask_resample.inputs.drivers.plain_fits", "dask_resample.inputs.drivers.in_memory",
                 "dask_resample.inputs.drivers._fitsfile", "dask_resample.inputs.drivers.roman_model"):
        assert "dask_resample.inputs.io" not in edges[name], name
    assert "dask_resample.execution.graph" not in edges["dask_resample.drizzle.kernel"]
