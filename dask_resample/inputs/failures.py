"""Failures passed along as values.

A worker task that fails on bad input returns a :class:`TaskFailure` instead of
raising: Dask then logs nothing on the workers (no "Compute Failed" traceback
on the user's terminal), tasks that depend on it pass it on unchanged, every
other tile is still computed, and the client reports each failure once, in one
line that names the input. The same holds on the serial path.

:func:`worker_task` makes a task function behave so; the traceback of an
unexpected exception travels with the failure and is logged on the client at
debug level (``dask-resample --debug``).
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from .records import InputError

__all__ = ["TaskFailure", "TileTaskError", "first_failure", "one_line_message", "worker_task"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class TileTaskError(RuntimeError):
    """A tile could not be computed; the message names the input."""


def one_line_message(exc: BaseException) -> str:
    """One line for an exception: its message, prefixed by its type unless it is an input error."""
    lines = str(exc).strip().splitlines()
    msg = lines[0] if lines else ""
    if isinstance(exc, (InputError, TileTaskError)):
        return msg or type(exc).__name__
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


@dataclass(frozen=True)
class TaskFailure:
    """A task's exception, as a small picklable value.

    Attributes
    ----------
    message : str
        One line naming the input (see :func:`one_line_message`).
    input_error : bool
        True when the input itself is at fault (:class:`~dask_resample.inputs.io.InputError`).
    """

    message: str
    input_error: bool = False
    #: The worker's formatted traceback of an unexpected exception ("" for input errors).
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, context: str = "") -> TaskFailure:
        """Capture ``exc`` (``context``: what failed, prefixed to the message of an unexpected exception)."""
        if isinstance(exc, InputError):
            return cls(one_line_message(exc), True)
        message = f"{context}: {one_line_message(exc)}" if context else one_line_message(exc)
        return cls(message, False, "".join(traceback.format_exception(exc)))

    def raise_(self) -> NoReturn:
        """Raise it on the client: :class:`InputError` for input problems, else ``RuntimeError``."""
        self.log_traceback()
        if self.input_error:
            raise InputError(self.message)
        raise RuntimeError(self.message)

    def log_traceback(self) -> None:
        """Log the worker's traceback at debug level (shown by ``--debug``)."""
        if self.traceback:
            log.debug("%s\nworker traceback:\n%s", self.message, self.traceback.rstrip())

    @staticmethod
    def guard(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func``; return a :class:`TaskFailure` if it raises or if an argument is one."""
        for a in (*args, *kwargs.values()):
            if isinstance(a, TaskFailure):
                return a
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            return TaskFailure.from_exception(exc)


def first_failure(values: Any) -> TaskFailure | None:
    """The first :class:`TaskFailure` in an iterable, if any."""
    return next((v for v in values if isinstance(v, TaskFailure)), None)


def _upstream_failure(values: Any) -> TaskFailure | None:
    """The first failure among task arguments: one itself, or in a list or tuple of results."""
    for v in values:
        if isinstance(v, TaskFailure):
            return v
        if isinstance(v, (list, tuple)) and (f := first_failure(v)) is not None:
            return f
    return None


def worker_task(context: Callable[..., str]) -> Callable[[F], F]:
    """Make a worker task return its failures as values.

    Before the task runs, a :class:`TaskFailure` among its arguments (or in a list
    or tuple of upstream results) is returned as it is: failures pass along the
    graph unchanged. An :class:`~dask_resample.inputs.records.InputError` raised by the
    task becomes a failure with its own message; any other exception one whose
    message is ``context(*args, **kwargs)`` (what failed, naming the input or
    tile) followed by the exception, and which keeps the worker's traceback.

    Parameters
    ----------
    context : callable
        Called with the task's arguments; returns e.g. ``"<file>: drizzling failed"``.
    """

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def task(*args: Any, **kwargs: Any) -> Any:
            if (failure := _upstream_failure((*args, *kwargs.values()))) is not None:
                return failure
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                return TaskFailure.from_exception(exc, context(*args, **kwargs))

        return task  # type: ignore[return-value]  # called as func is (functools.wraps), typed as F

    return wrap
