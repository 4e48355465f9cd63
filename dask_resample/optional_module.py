"""A module imported on its first use, or ``None`` where it cannot be imported (numba absent)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["OptionalModule"]


class OptionalModule:
    """A module imported when first asked for; ``None`` if its import fails (an optional extra is absent).

    The compiled (numba) variants of the drizzle steps (the fused kernels, the tile
    reduction's sums, the map scans) and of the pixel map live in modules of their own,
    imported only where numba is installed (the ``fast`` extra); their callers fall
    back to drizzle's C or numpy when :meth:`get` returns ``None``. The import is tried
    once per process.

    Parameters
    ----------
    name : str
        Module name, relative (``".reduce_compiled"``) to ``package`` or absolute.
    package : str
        The package a relative ``name`` is resolved in (the caller's ``__package__``).
    missing : str, optional
        Logged (INFO) once where the import fails: what the fallback is and how to install.
    """

    def __init__(self, name: str, package: str | None, missing: str | None = None) -> None:
        self.name, self.package, self.missing = name, package, missing
        self._tried = False
        self._module: Any = None

    def get(self) -> Any:
        """The module, or ``None`` where its import raised :class:`ImportError`."""
        if not self._tried:
            try:
                self._module = importlib.import_module(self.name, self.package)
            except ImportError:
                self._module = None
                if self.missing:
                    log.info("%s", self.missing)
            self._tried = True
        return self._module

    def available(self) -> bool:
        """Whether the module can be imported here (importing it on the first call)."""
        return self.get() is not None
