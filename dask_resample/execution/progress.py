"""A graph run with its progress (a bar or log lines) and each distinct failure logged once."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ..inputs.failures import TaskFailure
from .graph import GraphOutcome, MosaicGraph, run_graph

__all__ = ["run_with_progress"]

log = logging.getLogger(__name__)


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty()


def run_with_progress(
    graph: MosaicGraph, *, client: Any, progress: bool | None, desc: str = "tiles", unit: str = "tile"
) -> GraphOutcome:
    """Run the graph; a failing tile does not stop the others.

    Each distinct failure is logged once, when it first occurs.
    """
    if not graph.tile_keys:
        return GraphOutcome({}, {}, {})
    bar = None
    if _progress_enabled(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(graph.tile_keys), desc=desc, unit=unit, file=sys.stderr)
    n_total = len(graph.tile_keys)
    n_done = 0
    reported: set[str] = set()

    def on_tile(key: Any, result: Any) -> None:
        nonlocal n_done
        n_done += 1
        if isinstance(result, TaskFailure) and result.message not in reported:
            reported.add(result.message)
            log.error("%s failed: %s", graph.label(key) or key, result.message)
            result.log_traceback()
        if bar is not None:
            bar.update(1)
        elif n_done == n_total or n_done % max(1, n_total // 10) == 0:
            log.info("%s done: %d/%d", desc, n_done, n_total)

    try:
        return run_graph(graph, client=client, on_tile=on_tile)
    finally:
        if bar is not None:
            bar.close()
