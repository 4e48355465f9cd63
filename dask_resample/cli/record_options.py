"""One command-line option, and the options of a parameter record read from its fields' metadata.

An :class:`Option` is one long option, usable on the command line and as a key
of an option file (``--config``). The options of a parameter record
(:class:`~dask_resample.params.ResampleParams`,
:class:`~dask_resample.outliers.OutlierParams`) come from the metadata of its
fields through one generic path, :class:`RecordOptions`: their options, their
defaults, and the record built back from resolved values.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..param_fields import CommandLineForm, field_default, record_fields

__all__ = ["PROG", "CLIError", "Option", "RecordOptions", "argparse_type"]

PROG = "dask-resample"


class CLIError(Exception):
    """A command-line failure; the message names the culprit."""


# ----------------------------------------------------------------------------
# value types
# ----------------------------------------------------------------------------
def _pixel_count(text: Any) -> int:
    """An integer that may be written ``1e9``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of pixels, got {text!r}") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"expected a positive number of pixels, got {text!r}")
    return int(value)


def _text(text: Any) -> str:
    return str(text)


def _memory(text: Any) -> Any:
    return text if isinstance(text, int) and not isinstance(text, bool) else str(text)


def argparse_type(convert: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from a converter that raises ``ValueError``."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__.lstrip("_").removeprefix("parse_").removesuffix("_text")
    return parse


# ----------------------------------------------------------------------------
# one option
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One long option, usable on the command line and as a config-file key.

    Attributes
    ----------
    flag : str
        Long flag (``--pixel-scale``); its config key is the flag without the
        dashes, with dashes or underscores (``pixel-scale``, ``pixel_scale``).
    help : str
        Help text.
    convert : callable, optional
        Converts one value (``None`` for on/off switches).
    nargs : int, optional
        Number of values (2 for pairs such as ``--crpix X Y``).
    metavar : tuple of str or str, optional
    choices : tuple, optional
    """

    flag: str
    help: str
    convert: Callable[[Any], Any] | None = None
    nargs: int | None = None
    metavar: Any = None
    choices: tuple[Any, ...] | None = None

    @property
    def dest(self) -> str:
        """Attribute name (``pixel_scale``)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def is_switch(self) -> bool:
        """True for on/off flags."""
        return self.convert is None

    def add_to(self, parser: argparse.ArgumentParser | Any) -> None:
        """Add the option to an argparse parser or group (absent from the namespace when not given).

        A value that reads as ``None`` (``--good-bits none``) is thus told apart from no value.
        """
        if self.convert is None:
            parser.add_argument(
                self.flag, dest=self.dest, action="store_true", default=argparse.SUPPRESS, help=self.help
            )
            return
        kwargs: dict[str, Any] = {"dest": self.dest, "default": argparse.SUPPRESS, "help": self.help}
        kwargs["type"] = argparse_type(self.convert)
        if self.nargs:
            kwargs["nargs"] = self.nargs
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        if self.choices is not None:
            kwargs["choices"] = self.choices
        parser.add_argument(self.flag, **kwargs)

    def from_config(self, value: Any, source: str) -> Any:
        """Convert a config-file value, naming the key and file on failure."""
        key = self.dest
        if self.convert is None:
            if not isinstance(value, bool):
                raise CLIError(f"{source}: {key}: expected true or false, got {value!r}")
            return value
        convert = self.convert
        try:
            if self.nargs:
                if not isinstance(value, (list, tuple)) or len(value) != self.nargs:
                    raise ValueError(f"expected a list of {self.nargs} values, got {value!r}")
                out = [convert(v) for v in value]
            else:
                out = convert(value)
        except ValueError as exc:
            raise CLIError(f"{source}: {key}: {exc}") from None
        if self.choices is not None and out not in self.choices:
            raise CLIError(f"{source}: {key}: expected one of {', '.join(map(str, self.choices))}, got {value!r}")
        return out


def _default_text(value: Any) -> str:
    return "none" if value is None else str(value)


# ----------------------------------------------------------------------------
# the options of a parameter record, from its field metadata
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordOptions:
    """The command-line face of a parameter record, read from the metadata of its fields.

    Attributes
    ----------
    record : type
        :class:`~dask_resample.params.ResampleParams` or
        :class:`~dask_resample.outliers.OutlierParams`.
    defaults : mapping
        Parameter name -> default of the command line (the record's own
        defaults where absent).
    origin : mapping
        Parameter name -> note appended to the default in the help text.
    fixed : mapping
        Arguments of the record that are not options, given to every record
        built (the mission's ``flag_name_map``).
    """

    record: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    origin: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def _forms(self) -> list[tuple[str, CommandLineForm, Any]]:
        return [
            (f.name, f.metadata["cli"], self.defaults.get(f.name, field_default(f))) for f in record_fields(self.record)
        ]

    @property
    def options(self) -> tuple[Option, ...]:
        """One option per field, in field order; help texts state the defaults of values."""
        out = []
        for f in record_fields(self.record):
            form: CommandLineForm = f.metadata["cli"]
            help_text = f.metadata["help"]
            if form.parse is not None:
                default = self.defaults.get(f.name, field_default(f))
                help_text = f"{help_text} (default {_default_text(default)}{self.origin.get(f.name, '')})"
            out.append(
                Option(
                    form.flag,
                    help_text,
                    form.parse,
                    metavar=form.metavar,
                    choices=f.metadata["choices"] if form.parse is not None else None,
                )
            )
        return tuple(out)

    @property
    def option_defaults(self) -> dict[str, Any]:
        """Option name -> default, with ``--no-*`` switches as booleans."""
        return {form.dest: (not default) if form.negate else default for _, form, default in self._forms()}

    @property
    def aliases(self) -> dict[str, str]:
        """Option-file keys that are parameter names of negated switches (``enable_ctx`` for ``--no-ctx``)."""
        return {name: form.dest for name, form, _ in self._forms() if form.negate}

    def build(self, values: Mapping[str, Any]) -> Any:
        """The record of resolved option values (validated: a bad value names its parameter).

        Options absent from ``values`` take :attr:`defaults` (the record's own where absent there).
        """
        names = {f.name for f in record_fields(self.record)}
        kwargs = {name: value for name, value in self.defaults.items() if name in names}
        for name, form, _ in self._forms():
            if form.dest in values:
                value = values[form.dest]
                kwargs[name] = (not value) if form.negate else (bool(value) if form.parse is None else value)
        return self.record(**kwargs, **self.fixed)
