"""Resampling parameters: one validated, frozen record shared by every task.

:class:`ResampleParams` is the single source of truth for the drizzle and
output parameters: their names, defaults (those of
:class:`jwst.resample.resample.ResampleImage`), allowed values, help text and
command-line form live in the metadata of its fields. The command line, the
option files, :func:`dask_resample.resample` and the jwst-compatible facade
are all derived from it. Validation happens here, on the client, before any
pixel is read, so that a bad parameter fails with one line naming it.

The command line uses the defaults of jwst's ``ResampleStep`` instead, which
differ in a few parameters: :data:`STEP_DEFAULTS` lists exactly those.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any

import numpy as np
from astropy.nddata.bitmask import interpret_bit_flags

__all__ = [
    "COMPUTE_ERR_CHOICES",
    "KERNELS",
    "STEP_DEFAULTS",
    "WCS_PARS_KEYS",
    "WEIGHT_TYPES",
    "CommandLineForm",
    "ResampleParams",
    "check_wcs_pars",
    "default_flag_name_map",
    "parameter_default",
    "parameter_fields",
    "parse_fillval",
    "parse_number",
    "step_defaults",
]

#: Drizzle kernels supported by the reference.
KERNELS: tuple[str, ...] = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")

#: Keys accepted in ``wcs_pars`` (as in ``jwst.resample.resample``).
WCS_PARS_KEYS: tuple[str, ...] = (
    "pixel_scale_ratio",
    "pixel_scale",
    "output_shape",
    "crpix",
    "crval",
    "rotation",
)

#: Input weightings supported by the reference.
WEIGHT_TYPES: tuple[str, ...] = ("ivm", "exptime")

#: How the error array is made (``None``: no error array).
COMPUTE_ERR_CHOICES: tuple[str | None, ...] = (None, "from_var", "driz_err")

#: Reach of each kernel, in input pixels, used to size the tile halo.
_KERNEL_REACH: dict[str, float] = {
    "square": 1.0,
    "point": 1.0,
    "turbo": 1.0,
    "gaussian": 2.0,
    "lanczos2": 3.0,
    "lanczos3": 4.0,
}


def check_wcs_pars(wcs_pars: Any) -> dict[str, Any]:
    """Check the keys of a ``wcs_pars`` mapping before any work is done.

    Parameters
    ----------
    wcs_pars : mapping or None
        Custom output WCS parameters (see :data:`WCS_PARS_KEYS`).

    Returns
    -------
    dict
        A copy of ``wcs_pars`` (empty for ``None``).

    Raises
    ------
    KeyError
        For unknown keys (the message names them).
    """
    if wcs_pars is None:
        return {}
    if not hasattr(wcs_pars, "keys"):
        raise KeyError(f"wcs_pars: expected a mapping, got {type(wcs_pars).__name__}")
    unknown = sorted(set(wcs_pars).difference(WCS_PARS_KEYS), key=str)
    if unknown:
        raise KeyError(f"wcs_pars: unsupported key(s) {', '.join(map(repr, unknown))}; "
                       f"supported: {', '.join(WCS_PARS_KEYS)}")
    return dict(wcs_pars)


def default_flag_name_map() -> dict[str, int]:
    """Return the JWST DQ mnemonic map (:data:`dask_resample.dqflags.PIXEL`).

    Returns
    -------
    dict
        Mapping of DQ flag names to bit values.
    """
    from .dqflags import PIXEL

    return dict(PIXEL)


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
    try:
        return float(fillval)
    except (TypeError, ValueError):
        raise ValueError(f"fillval: cannot interpret {fillval!r} as a number, 'NAN' or 'INDEF'") from None



# -- reading a parameter from text (command line, option files) ---------------
def parse_number(text: Any) -> float:
    """A float from text or a number (not a boolean)."""
    if isinstance(text, bool):
        raise ValueError(f"expected a number, got {text!r}")
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {text!r}") from None


def _word(text: Any) -> str:
    return str(text)


def _good_bits_text(text: Any) -> Any:
    """``good_bits`` as given: integers stay integers, ``none`` turns DQ off."""
    if text is None or isinstance(text, int) and not isinstance(text, bool):
        return text
    value = str(text).strip()
    if value.lower() == "none":
        return None
    return value


def _fillval_text(text: Any) -> Any:
    return text if isinstance(text, (int, float)) and not isinstance(text, bool) else str(text)


def _compute_err_text(text: Any) -> str | None:
    if text is None:
        return None
    value = str(text).strip()
    if value.lower() in ("none", "null", ""):
        return None
    if value not in COMPUTE_ERR_CHOICES:
        raise ValueError(f"expected 'from_var', 'driz_err' or 'none', got {text!r}")
    return value


@dataclass(frozen=True)
class CommandLineForm:
    """How a parameter is spelled on the command line and in option files.

    Attributes
    ----------
    flag : str
        Long flag (``--pixfrac``); its option-file key is the flag without the
        dashes (``pixfrac``), and the parameter's own name is accepted too.
    parse : callable, optional
        Converts one value given as text (``None`` for on/off switches).
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


def _param(default: Any, help: str, form: CommandLineForm, *, choices: tuple[Any, ...] | None = None) -> Any:
    """A :class:`ResampleParams` field with its help text, choices and command-line form."""
    return field(default=default, metadata={"help": help, "choices": choices, "cli": form})


@dataclass(frozen=True)
class ResampleParams:
    """Drizzle and output parameters of one mosaic.

    Names and defaults are those of :class:`jwst.resample.resample.ResampleImage`;
    each field's metadata holds its help text (``"help"``), allowed values
    (``"choices"``) and command-line form (``"cli"``, a
    :class:`CommandLineForm`). ``good_bits`` is kept as given (for the
    record) and resolved to an integer mask in :attr:`good_bits_mask`.

    Raises
    ------
    ValueError
        For an invalid value; the message starts with the parameter's name.
    """

    pixfrac: float = _param(1.0, "pixel shrink factor, in (0, 1]",
                            CommandLineForm("--pixfrac", parse_number, "F"))
    kernel: str = _param("square", "drizzle kernel", CommandLineForm("--kernel", _word), choices=KERNELS)
    fillval: Any = _param("NAN", "value of pixels without input: a number, NAN or INDEF",
                          CommandLineForm("--fillval", _fillval_text, "VALUE"))
    weight_type: str = _param("ivm", "input weighting", CommandLineForm("--weight-type", _word),
                              choices=WEIGHT_TYPES)
    good_bits: Any = _param(0, "DQ flags treated as good: integer, mnemonics such as '~DO_NOT_USE+NON_SCIENCE' "
                            "or 'none' to ignore DQ", CommandLineForm("--good-bits", _good_bits_text, "BITS"))
    enable_ctx: bool = _param(True, "do not compute the context (CON) array",
                              CommandLineForm("--no-ctx", negate=True))
    enable_var: bool = _param(True, "do not resample the variance arrays (with --compute-err from_var they "
                              "are still resampled to make the error array)",
                              CommandLineForm("--no-var", negate=True))
    report_var: bool = _param(True, "compute but do not store the variance arrays",
                              CommandLineForm("--no-report-var", negate=True))
    compute_err: str | None = _param(None, "error array: from the resampled variances, drizzled from the input "
                                     "ERR, or none",
                                     CommandLineForm("--compute-err", _compute_err_text,
                                                     "{from_var,driz_err,none}"),
                                     choices=COMPUTE_ERR_CHOICES)
    propagate_dq: bool = _param(False, "also resample the DQ array (bitwise OR)",
                                CommandLineForm("--propagate-dq"))
    pixmap_stepsize: float = _param(1, "pixel-map sampling step, interpolated in between (1: every pixel)",
                                    CommandLineForm("--pixmap-stepsize", parse_number, "N"))
    pixmap_order: int = _param(1, "pixel-map interpolation order", CommandLineForm("--pixmap-order", int),
                               choices=(1, 3))
    flag_name_map: dict[str, int] = field(default_factory=default_flag_name_map, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel: unknown kernel {self.kernel!r}; expected one of {', '.join(KERNELS)}")
        try:
            pixfrac = float(self.pixfrac)
        except (TypeError, ValueError):
            raise ValueError(f"pixfrac: {self.pixfrac!r} is not a number") from None
        if not (0.0 < pixfrac <= 1.0):
            raise ValueError(f"pixfrac: must be in (0, 1], got {self.pixfrac!r}")
        object.__setattr__(self, "pixfrac", pixfrac)
        if self.weight_type not in WEIGHT_TYPES:
            raise ValueError(f"weight_type: expected 'ivm' or 'exptime', got {self.weight_type!r}")
        if self.compute_err not in COMPUTE_ERR_CHOICES:
            raise ValueError(f"compute_err: expected None, 'from_var' or 'driz_err', got {self.compute_err!r}")
        parse_fillval(self.fillval)
        try:
            stepsize = float(self.pixmap_stepsize)
        except (TypeError, ValueError):
            raise ValueError(f"pixmap_stepsize: {self.pixmap_stepsize!r} is not a number") from None
        if not (stepsize > 0 and math.isfinite(stepsize)):
            raise ValueError(f"pixmap_stepsize: must be a positive number, got {self.pixmap_stepsize!r}")
        # as in stcal's calc_pixmap, the spline order only matters for a sparse pixel map
        if stepsize != 1 and self.pixmap_order not in (1, 3):
            raise ValueError(
                f"pixmap_order: must be 1 or 3 when pixmap_stepsize != 1, got {self.pixmap_order!r}"
            )
        self.good_bits_mask  # validate early: unknown mnemonics fail here

    # -- construction ---------------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of the parameters (without ``flag_name_map``), in order."""
        return tuple(f.name for f in parameter_fields())

    @classmethod
    def from_kwargs(cls, params: ResampleParams | None = None, **kwargs: Any) -> ResampleParams:
        """A record from keyword arguments, or ``params`` (not both).

        Parameters
        ----------
        params : ResampleParams, optional
            A ready record; returned as is.
        **kwargs
            Parameter values; unset ones take their defaults.

        Raises
        ------
        TypeError
            For an unknown keyword, or ``params`` together with keywords.
        """
        unknown = sorted(set(kwargs).difference(cls.names()))
        if unknown:
            raise TypeError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                            f"expected some of {', '.join(cls.names())}")
        if params is not None:
            if kwargs:
                raise TypeError(f"give either params=ResampleParams(...) or {', '.join(sorted(kwargs))}, not both")
            if not isinstance(params, ResampleParams):
                raise TypeError(f"params: expected a ResampleParams, got {type(params).__name__}")
            return params
        return cls(**kwargs)

    def as_kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments (without ``flag_name_map``)."""
        return {name: getattr(self, name) for name in self.names()}

    # -- derived values -------------------------------------------------
    @property
    def good_bits_mask(self) -> int | None:
        """The ``good_bits`` parameter as an integer mask (``None``: DQ ignored).

        Raises
        ------
        ValueError
            If ``good_bits`` names an unknown DQ mnemonic or is malformed.
        """
        try:
            mask = interpret_bit_flags(self.good_bits, flag_name_map=self.flag_name_map)
        except KeyError as exc:
            raise ValueError(
                f"good_bits: unknown DQ flag name {exc.args[0]!r} in {self.good_bits!r}"
            ) from None
        except (ValueError, TypeError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"good_bits: cannot interpret {self.good_bits!r}: {msg}") from None
        return None if mask is None else int(mask)

    @property
    def fill_value(self) -> float:
        """Value of output pixels without any contribution."""
        return parse_fillval(self.fillval)

    @property
    def err_enabled(self) -> bool:
        """Whether the output has an error array.

        As in ``stcal.resample.Resample``: ``"from_var"`` needs ``enable_var``
        (the reference computes no variances, and so no error, without it).
        """
        return self.compute_err == "driz_err" or (self.compute_err == "from_var" and bool(self.enable_var))

    @property
    def kernel_reach(self) -> float:
        """Reach of the kernel in input pixels (used to size tile halos)."""
        return _KERNEL_REACH[self.kernel] * max(1.0, self.pixfrac)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-serialisable dictionary."""
        out = asdict(self)
        out.pop("flag_name_map")
        if isinstance(out["good_bits"], np.integer):
            out["good_bits"] = int(out["good_bits"])
        return out


def parameter_fields() -> Iterator[Field]:
    """The fields of :class:`ResampleParams` that are parameters (with a command-line form)."""
    return (f for f in fields(ResampleParams) if "cli" in f.metadata)


def parameter_default(f: Field) -> Any:
    """Default of a :class:`ResampleParams` field."""
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


#: Defaults of jwst's ``ResampleStep`` where they differ from those of ``ResampleImage``
#: (the record's own defaults). The command line and option files use these; the Python
#: API and the facade keep the record's defaults.
STEP_DEFAULTS: Mapping[str, Any] = {
    "good_bits": "~DO_NOT_USE+NON_SCIENCE",
    "compute_err": "from_var",
    "pixmap_stepsize": 1.0,
}


def step_defaults() -> dict[str, Any]:
    """Every parameter's default as jwst's ``ResampleStep`` has it (record defaults + :data:`STEP_DEFAULTS`)."""
    return {f.name: STEP_DEFAULTS.get(f.name, parameter_default(f)) for f in parameter_fields()}
