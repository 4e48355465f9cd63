"""Failures passed along as values.

A worker task that fails on bad input returns a :class:`TaskFailure` instead of
raising: Dask then logs nothing on the workers (no "Compute Failed" traceback
on the user's terminal), tasks that depend on it pass it on unchanged, every
other tile is still computed, and the client reports each failure once, in one
line that names the input. The same holds on the serial path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from .records import InputError

__all__ = ["TaskFailure", "first_failure", "one_line_message"]


def one_line_message(exc: BaseException) -> str:
    """One line for an exception: its message, prefixed by its type unless it is an input error."""
    lines = str(exc).strip().splitlines()
    msg = lines[0] if lines else ""
    if isinstance(exc, InputError) or type(exc).__name__ == "TileTaskError":
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
        True when the input itself is at fault (:class:`~dask_resample.io.InputError`).
    """

    message: str
    input_error: bool = False

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskFailure:
        """Capture ``exc``."""
        return cls(one_line_message(exc), isinstance(exc, InputError))

    def raise_(self) -> NoReturn:
        """Raise it on the client: :class:`InputError` for input problems, else ``RuntimeError``."""
        if self.input_error:
            raise InputError(self.message)
        raise RuntimeError(self.message)

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
