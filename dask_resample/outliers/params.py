"""Outlier-detection parameters: one validated, frozen record.

:class:`OutlierParams` holds the imaging parameters of jwst's
``OutlierDetectionStep`` (jwst 3.0) with the step's names and defaults; the
help text, allowed values and command-line form of each live in its field
metadata, as for :class:`~dask_resample.params.ResampleParams`. The drizzle of
each exposure group onto the common grid uses :meth:`OutlierParams.resample_params`,
the parameters the step gives ``ResampleImage`` (no context, no variances, no
error array).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

from ..params import (
    WEIGHT_TYPES,
    CommandLineForm,
    ResampleParams,
    _fillval_text,
    _good_bits_text,
    _word,
    parse_number,
)

__all__ = ["OUTLIER_KERNELS", "OutlierParams", "outlier_fields"]

#: Kernels the step accepts.
OUTLIER_KERNELS: tuple[str, ...] = ("square", "point", "turbo")


def _pair_text(text: Any) -> str:
    return str(text)


def _switch_text(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _param(default: Any, help: str, form: CommandLineForm, *, choices: tuple[Any, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, "cli": form})


def _parse_pair(name: str, value: Any) -> tuple[float, float]:
    """``"5.0 4.0"`` (the step's form) or a pair of numbers -> two floats."""
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
    else:
        try:
            parts = list(value)
        except TypeError:
            parts = [value]
    if len(parts) != 2:
        raise ValueError(f"{name}: expected two numbers such as '5.0 4.0', got {value!r}")
    try:
        a, b = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected two numbers such as '5.0 4.0', got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name}: expected two finite numbers, got {value!r}")
    return a, b


@dataclass(frozen=True)
class OutlierParams:
    """Parameters of imaging outlier detection (names and defaults of jwst's ``OutlierDetectionStep``).

    Raises
    ------
    ValueError
        For an invalid value; the message starts with the parameter's name.
    """

    weight_type: str = _param("ivm", "input weighting of the group drizzle and of the median",
                              CommandLineForm("--weight-type", _word), choices=WEIGHT_TYPES)
    pixfrac: float = _param(1.0, "pixel shrink factor of the group drizzle, in (0, 1]",
                            CommandLineForm("--pixfrac", parse_number, "F"))
    kernel: str = _param("square", "drizzle kernel of the group drizzle", CommandLineForm("--kernel", _word),
                         choices=OUTLIER_KERNELS)
    fillval: Any = _param("NAN", "value of group-image pixels without input",
                          CommandLineForm("--fillval", _fillval_text, "VALUE"))
    maskpt: float = _param(0.7, "fraction of each group's mean weight below which its pixels are left out "
                           "of the median", CommandLineForm("--maskpt", parse_number, "F"))
    snr: str = _param("5.0 4.0", "signal-to-noise thresholds before and after smoothing",
                      CommandLineForm("--snr", _pair_text, "'S1 S2'"))
    scale: str = _param("1.2 0.7", "scales of the blot derivative before and after smoothing",
                        CommandLineForm("--scale", _pair_text, "'F1 F2'"))
    backg: float = _param(0.0, "background level added to the blotted median",
                          CommandLineForm("--backg", parse_number, "LEVEL"))
    resample_data: bool = _param(True, "take the median of the inputs on their own pixel grid "
                                 "(all inputs of one shape), without drizzling",
                                 CommandLineForm("--no-resample-data", negate=True))
    good_bits: Any = _param("~DO_NOT_USE", "DQ flags treated as good",
                            CommandLineForm("--good-bits", _good_bits_text, "BITS"))
    pixmap_stepsize: float = _param(1.0, "pixel-map sampling step (1: every pixel)",
                                    CommandLineForm("--pixmap-stepsize", parse_number, "N"))
    pixmap_order: int = _param(1, "pixel-map interpolation order", CommandLineForm("--pixmap-order", int),
                               choices=(1, 3))
    save_intermediate_results: bool = _param(
        False, "also write the group images and the median (Zarr and FITS) and the blotted images (FITS)",
        CommandLineForm("--save-intermediate-results"))

    def __post_init__(self) -> None:
        if self.kernel not in OUTLIER_KERNELS:
            raise ValueError(f"kernel: outlier detection supports {', '.join(OUTLIER_KERNELS)}, got {self.kernel!r}")
        for name in ("maskpt", "backg"):
            try:
                value = float(getattr(self, name))
            except (TypeError, ValueError):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{name}: must be finite, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        _parse_pair("snr", self.snr)
        _parse_pair("scale", self.scale)
        for name in ("resample_data", "save_intermediate_results"):
            object.__setattr__(self, name, _switch_text(getattr(self, name)))
        self.resample_params()  # validates the drizzle parameters (pixfrac, fillval, good_bits, ...)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of the parameters, in order."""
        return tuple(f.name for f in outlier_fields())

    @classmethod
    def from_kwargs(cls, params: OutlierParams | Mapping[str, Any] | None = None, **kwargs: Any) -> OutlierParams:
        """A record from another record or mapping, updated by keywords (a keyword wins).

        Raises
        ------
        TypeError
            For an unknown parameter name.
        """
        base: dict[str, Any] = {}
        if isinstance(params, OutlierParams):
            base = params.as_kwargs()
        elif params is not None:
            base = dict(params)
        base.update(kwargs)
        unknown = sorted(set(base) - set(cls.names()))
        if unknown:
            raise TypeError(f"unknown outlier-detection parameter(s): {', '.join(unknown)}")
        return cls(**base)

    def as_kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments."""
        return {name: getattr(self, name) for name in self.names()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary of the parameters."""
        return asdict(self)

    @property
    def snr1(self) -> float:
        """Signal-to-noise threshold before smoothing."""
        return _parse_pair("snr", self.snr)[0]

    @property
    def snr2(self) -> float:
        """Signal-to-noise threshold after smoothing."""
        return _parse_pair("snr", self.snr)[1]

    @property
    def scale1(self) -> float:
        """Derivative scale before smoothing."""
        return _parse_pair("scale", self.scale)[0]

    @property
    def scale2(self) -> float:
        """Derivative scale after smoothing."""
        return _parse_pair("scale", self.scale)[1]

    def resample_params(self) -> ResampleParams:
        """The drizzle parameters of the group images, as the step gives them to ``ResampleImage``."""
        return ResampleParams(
            pixfrac=self.pixfrac,
            kernel=self.kernel,
            fillval=self.fillval,
            weight_type=self.weight_type,
            good_bits=self.good_bits,
            enable_ctx=False,
            enable_var=False,
            report_var=False,
            compute_err=None,
            propagate_dq=False,
            pixmap_stepsize=self.pixmap_stepsize,
            pixmap_order=self.pixmap_order,
        )


def outlier_fields() -> Iterator[Field]:
    """The fields of :class:`OutlierParams`."""
    return (f for f in fields(OutlierParams) if "cli" in f.metadata)


def outlier_default(f: Field) -> Any:
    """Default of a field."""
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
