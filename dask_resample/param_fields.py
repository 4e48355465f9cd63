"""Parameter fields shared by the parameter records, and their one validation.

A parameter of :class:`~dask_resample.params.ResampleParams` or
:class:`~dask_resample.outliers.OutlierParams` is a dataclass field whose
metadata holds its help text (``"help"``), allowed values (``"choices"``),
command-line form (``"cli"``, a :class:`CommandLineForm`) and check
(``"check"``). :func:`validate_record` runs the same path for every record and
every interface: a value given as text is read by the field's command-line
parser, then checked; the command line, the option files and Python therefore
accept exactly the same values, and a refused value fails with one line that
starts with the parameter's name.

The drizzle parameters that both records have (``pixfrac``, ``kernel``,
``fillval``, ``weight_type``, ``good_bits``, ``pixmap_stepsize``,
``pixmap_order``) are defined once here, as :class:`Parameter` objects whose
:meth:`Parameter.field` makes the field of either record.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

import numpy as np
from astropy.nddata.bitmask import interpret_bit_flags

__all__ = [
    "COMPUTE_ERR",
    "COMPUTE_ERR_CHOICES",
    "FILLVAL",
    "GOOD_BITS",
    "KERNEL",
    "KERNELS",
    "PIXFRAC",
    "PIXMAP_ORDER",
    "PIXMAP_ORDERS",
    "PIXMAP_STEPSIZE",
    "WEIGHT_TYPE",
    "WEIGHT_TYPES",
    "CommandLineForm",
    "Parameter",
    "check_finite",
    "check_switch",
    "field_default",
    "good_bits_mask",
    "parse_compute_err",
    "parse_fillval",
    "parse_number",
    "parse_positive_int",
    "record_fields",
    "switch",
    "validate_record",
]

#: Drizzle kernels supported by the reference.
KERNELS: tuple[str, ...] = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")

#: Input weightings supported by the reference (``"ivm-sky"``: inverse sky variance, romancal's inputs).
WEIGHT_TYPES: tuple[str, ...] = ("ivm", "exptime", "ivm-sky")

#: How the error array is made (``None``: no error array).
COMPUTE_ERR_CHOICES: tuple[str | None, ...] = (None, "from_var", "driz_err")

#: Spline orders of a sparse pixel map (as stcal's ``calc_pixmap``).
PIXMAP_ORDERS: tuple[int, ...] = (1, 3)


# -- reading a parameter from text (command line, option files) ---------------
def parse_number(text: Any) -> float:
    """A float from text or a number (not a boolean).

    Raises
    ------
    ValueError
        For anything else.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a number, got {text!r}")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {text!r}") from None


def parse_integer(text: Any) -> int:
    """An integer from the text of one (``"3"``) or an integer (not a boolean, not a float).

    Raises
    ------
    ValueError
        For anything else (``"3.0"``, ``3.0``, ``True``).
    """
    if isinstance(text, (bool, np.bool_)) or not isinstance(text, (str, numbers.Integral)):
        raise ValueError(f"expected an integer, got {text!r}")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected an integer, got {text!r}") from None


def parse_positive_int(text: Any) -> int:
    """A positive integer from text or a number (not a boolean).

    Raises
    ------
    ValueError
        For anything else.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a positive integer, got {text!r}")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def parse_word(text: Any) -> str:
    """A word, as given."""
    return str(text)


def parse_good_bits(text: Any) -> Any:
    """``good_bits`` as given: integers stay integers, ``none`` turns DQ off."""
    if text is None or isinstance(text, int) and not isinstance(text, bool):
        return text
    value = str(text).strip()
    if value.lower() == "none":
        return None
    return value


def parse_fillval_text(text: Any) -> Any:
    """``fillval`` as given: a number or ``None`` stays as it is, anything else is text."""
    return text if text is None or isinstance(text, (int, float)) and not isinstance(text, bool) else str(text)


def parse_compute_err(text: Any) -> str | None:
    """``compute_err`` from text: ``from_var``, ``driz_err`` or ``none`` (``None``)."""
    if text is None:
        return None
    value = str(text).strip()
    if value.lower() in ("none", "null", ""):
        return None
    if value not in COMPUTE_ERR_CHOICES:
        raise ValueError(f"expected 'from_var', 'driz_err' or 'none', got {text!r}")
    return value


def parse_fillval(fillval: Any) -> float:
    """Translate a drizzle ``fillval`` into the float written to empty pixels.

    Parameters
    ----------
    fillval : float, str or None
        ``None``, ``""``, ``"INDEF"`` and ``"NAN"`` (any case) mean NaN, as in
        ``drizzle``; other strings must convert to a number.

    Returns
    -------
    float
        The fill value.

    Raises
    ------
    ValueError
        If ``fillval`` cannot be interpreted.
    """
    if fillval is None:
        return math.nan
    if isinstance(fillval, str):
        text = fillval.strip()
        if text.upper() in ("", "INDEF", "NAN"):
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"fillval: cannot interpret {fillval!r} as a number, 'NAN' or 'INDEF'") from None
    if isinstance(fillval, (bool, np.bool_)):
        raise ValueError(f"fillval: cannot interpret {fillval!r} as a number, 'NAN' or 'INDEF'")
    try:
        return float(fillval)
    except (TypeError, ValueError):
        raise ValueError(f"fillval: cannot interpret {fillval!r} as a number, 'NAN' or 'INDEF'") from None


@dataclass(frozen=True)
class CommandLineForm:
    """How a parameter is spelled on the command line and in option files.

    Attributes
    ----------
    flag : str
        Long flag (``--pixfrac``); its option-file key is the flag without the
        dashes (``pixfrac``), and the parameter's own name is accepted too.
    parse : callable, optional
        Converts one value given as text (``None`` for on/off switches). The
        records read text values of the parameter with it too.
    metavar : str, optional
    negate : bool
        For switches: giving the flag sets the parameter to ``False``
        (``--no-ctx`` sets ``enable_ctx=False``).
    """

    flag: str
    parse: Callable[[Any], Any] | None = None
    metavar: Any = None
    negate: bool = False

    @property
    def dest(self) -> str:
        """Name of the option (``no_ctx``)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def is_switch(self) -> bool:
        """True for on/off flags."""
        return self.parse is None


#: A parameter's check: ``(name, value, choices) -> value to store``; raises ``ValueError("name: ...")``.
Check = Callable[[str, Any, "tuple[Any, ...] | None"], Any]


# -- checks (the message starts with the parameter's name) --------------------
def _is_one_of(value: Any, choices: tuple[Any, ...]) -> bool:
    """Membership that takes neither ``True`` for ``1`` nor ``1.0`` for ``1``."""
    if value is None:
        return None in choices
    if isinstance(value, str):
        return value in [c for c in choices if isinstance(c, str)]
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value) in [c for c in choices if isinstance(c, int) and not isinstance(c, bool)]
    return False


def check_switch(name: str, value: Any, choices: tuple[Any, ...] | None = None) -> bool:
    """An on/off parameter: ``True`` or ``False`` (also numpy booleans)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    return bool(value)


def _number(name: str, value: Any) -> float:
    """``value`` as a float (not a boolean); the error names the parameter."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None


def check_finite(name: str, value: Any, choices: tuple[Any, ...] | None = None) -> float:
    """A finite number, as a float."""
    number = _number(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return number


def _check_pixfrac(name: str, value: Any, choices: tuple[Any, ...] | None) -> float:
    pixfrac = _number(name, value)
    if not (0.0 < pixfrac <= 1.0):
        raise ValueError(f"{name}: must be in (0, 1], got {value!r}")
    return pixfrac


def _check_kernel(name: str, value: Any, choices: tuple[Any, ...] | None) -> str:
    if not _is_one_of(value, choices or KERNELS):
        raise ValueError(f"{name}: unknown kernel {value!r}; expected one of {', '.join(choices or KERNELS)}")
    return value


def _check_fillval(name: str, value: Any, choices: tuple[Any, ...] | None) -> Any:
    parse_fillval(value)
    return value


def _check_weight_type(name: str, value: Any, choices: tuple[Any, ...] | None) -> str:
    if not _is_one_of(value, WEIGHT_TYPES):
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, WEIGHT_TYPES))}, got {value!r}")
    return value


def _check_good_bits(name: str, value: Any, choices: tuple[Any, ...] | None) -> Any:
    # the mnemonics are checked by the record, against its own flag name map (good_bits_mask)
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: cannot interpret {value!r}: expected an integer, DQ flag names or None")
    return value


def _check_compute_err(name: str, value: Any, choices: tuple[Any, ...] | None) -> str | None:
    if not _is_one_of(value, COMPUTE_ERR_CHOICES):
        raise ValueError(f"{name}: expected None, 'from_var' or 'driz_err', got {value!r}")
    return value


def _check_stepsize(name: str, value: Any, choices: tuple[Any, ...] | None) -> Any:
    # kept as given (an integer step stays an integer in the stored parameters)
    stepsize = _number(name, value)
    if not (stepsize > 0 and math.isfinite(stepsize)):
        raise ValueError(f"{name}: must be a positive number, got {value!r}")
    return value


def _check_order(name: str, value: Any, choices: tuple[Any, ...] | None) -> Any:
    """A non-negative integer; whether it must be one of :data:`PIXMAP_ORDERS` depends on the step
    (checked by :func:`validate_record`, as stcal's ``calc_pixmap`` ignores the order at step 1)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    return value


def good_bits_mask(good_bits: Any, flag_name_map: dict[str, int]) -> int | None:
    """``good_bits`` as an integer mask (``None``: DQ ignored).

    Raises
    ------
    ValueError
        If ``good_bits`` names an unknown DQ mnemonic or is malformed; the
        message starts with ``good_bits``.
    """
    try:
        mask = interpret_bit_flags(good_bits, flag_name_map=flag_name_map)
    except KeyError as exc:
        raise ValueError(f"good_bits: unknown DQ flag name {exc.args[0]!r} in {good_bits!r}") from None
    except (ValueError, TypeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"good_bits: cannot interpret {good_bits!r}: {msg}") from None
    return None if mask is None else int(mask)


# -- one parameter, shared by records ---------------------------------------
@dataclass(frozen=True)
class Parameter:
    """A parameter's help text, allowed values, command-line form and check, defined once.

    Attributes
    ----------
    help : str
        Help text.
    form : CommandLineForm
        Flag, text parser and metavar.
    check : callable
        ``(name, value, choices) -> value to store``; raises ``ValueError``
        starting with the parameter's name.
    choices : tuple, optional
        Allowed values.
    """

    help: str
    form: CommandLineForm
    check: Check
    choices: tuple[Any, ...] | None = None

    def field(self, default: Any, *, help: str | None = None, choices: tuple[Any, ...] | None = None) -> Any:
        """A dataclass field of a record.

        Parameters
        ----------
        default : Any
            The record's default.
        help : str, optional
            The record's own help text (default: the parameter's).
        choices : tuple, optional
            The record's allowed values, a subset of the parameter's (default: the parameter's).
        """
        return field(
            default=default,
            metadata={
                "help": help or self.help,
                "choices": choices if choices is not None else self.choices,
                "cli": self.form,
                "check": self.check,
            },
        )


def switch(default: bool, help: str, flag: str, *, negate: bool = False) -> Any:
    """The field of an on/off parameter (``--propagate-dq``; ``--no-ctx`` with ``negate``)."""
    return Parameter(help, CommandLineForm(flag, negate=negate), check_switch).field(default)


PIXFRAC = Parameter("pixel shrink factor, in (0, 1]", CommandLineForm("--pixfrac", parse_number, "F"), _check_pixfrac)
KERNEL = Parameter("drizzle kernel", CommandLineForm("--kernel", parse_word), _check_kernel, KERNELS)
FILLVAL = Parameter(
    "value of pixels without input: a number, NAN or INDEF",
    CommandLineForm("--fillval", parse_fillval_text, "VALUE"),
    _check_fillval,
)
WEIGHT_TYPE = Parameter(
    "input weighting", CommandLineForm("--weight-type", parse_word), _check_weight_type, WEIGHT_TYPES
)
GOOD_BITS = Parameter(
    "DQ flags treated as good: integer, mnemonics such as '~DO_NOT_USE+NON_SCIENCE' or 'none' to ignore DQ",
    CommandLineForm("--good-bits", parse_good_bits, "BITS"),
    _check_good_bits,
)
COMPUTE_ERR = Parameter(
    "error array: from the resampled variances, drizzled from the input ERR, or none",
    CommandLineForm("--compute-err", parse_compute_err, "{from_var,driz_err,none}"),
    _check_compute_err,
    COMPUTE_ERR_CHOICES,
)
PIXMAP_STEPSIZE = Parameter(
    "pixel-map sampling step, interpolated in between (1: every pixel)",
    CommandLineForm("--pixmap-stepsize", parse_number, "N"),
    _check_stepsize,
)
PIXMAP_ORDER = Parameter(
    "pixel-map interpolation order", CommandLineForm("--pixmap-order", parse_integer), _check_order
)


# -- records ----------------------------------------------------------------
def record_fields(record: Any) -> Iterator[Field]:
    """The fields of a record (class or instance) that are parameters (with a command-line form)."""
    return (f for f in fields(record) if "cli" in f.metadata)


def field_default(f: Field) -> Any:
    """Default of a record's field."""
    if f.default is not MISSING:
        return f.default
    factory = f.default_factory
    if not callable(factory):
        raise TypeError(f"{f.name}: the field has no default")
    return factory()


def read_value(f: Field, value: Any) -> Any:
    """A parameter's value as the record stores it: text read by the field's parser, then checked.

    Raises
    ------
    ValueError
        One line starting with the parameter's name.
    """
    form: CommandLineForm = f.metadata["cli"]
    if isinstance(value, str) and form.parse is not None:
        try:
            value = form.parse(value)
        except ValueError as exc:
            raise ValueError(f"{f.name}: {exc}") from None
    check: Check | None = f.metadata.get("check")
    return value if check is None else check(f.name, value, f.metadata.get("choices"))


def validate_record(record: Any) -> None:
    """Check every parameter of a frozen record and store the values as read (see :func:`read_value`).

    Raises
    ------
    ValueError
        For the first invalid value; the message starts with the parameter's name.
    """
    for f in record_fields(record):
        value = getattr(record, f.name)
        stored = read_value(f, value)
        if stored is not value:
            object.__setattr__(record, f.name, stored)
    # as stcal's calc_pixmap: the order is used (and must be 1 or 3) only for a sparse map (step != 1)
    order, step = getattr(record, "pixmap_order", None), getattr(record, "pixmap_stepsize", None)
    if order is not None and step is not None and step != 1 and order not in PIXMAP_ORDERS:
        raise ValueError(
            f"pixmap_order: expected one of {', '.join(map(str, PIXMAP_ORDERS))} with "
            f"pixmap_stepsize {step} (the order is used only when the step is not 1), got {order!r}"
        )
