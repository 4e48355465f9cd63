"""Resampling parameters: one validated, frozen record shared by every task.

:class:`ResampleParams` is the single source of truth for the drizzle and
output parameters: their names, defaults (those of
:class:`jwst.resample.resample.ResampleImage`), allowed values, help text,
command-line form and check live in the metadata of its fields (the drizzle
parameters it shares with :class:`~dask_resample.outliers.OutlierParams` are
defined once, in :mod:`dask_resample.param_fields`). The command line, the
option files, :func:`dask_resample.resample` and the jwst-compatible facade
are all derived from it. Validation happens here, on the client, before any
pixel is read, so that a bad parameter fails with one line naming it.

The command line uses the defaults of jwst's ``ResampleStep`` instead, which
differ in a few parameters: :data:`STEP_DEFAULTS` lists exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, asdict, dataclass, field
from typing import Any

import numpy as np

from .dqflags import PIXEL, ROMAN_PIXEL
from .param_fields import (
    COMPUTE_ERR,
    COMPUTE_ERR_CHOICES,
    FILLVAL,
    GOOD_BITS,
    KERNEL,
    KERNELS,
    PIXFRAC,
    PIXMAP_ORDER,
    PIXMAP_STEPSIZE,
    WEIGHT_TYPE,
    WEIGHT_TYPES,
    CommandLineForm,
    field_default,
    good_bits_mask,
    parse_fillval,
    parse_number,
    parse_positive_int,
    record_fields,
    switch,
    validate_record,
)

__all__ = [
    "COMPUTE_ERR_CHOICES",
    "KERNELS",
    "MISSIONS",
    "ROMAN_STEP_DEFAULTS",
    "STEP_DEFAULTS",
    "WCS_PARAMETERS",
    "WCS_PARS_KEYS",
    "WEIGHT_TYPES",
    "CommandLineForm",
    "ResampleParams",
    "WcsParameter",
    "check_wcs_pars",
    "default_flag_name_map",
    "flag_name_map_for",
    "parameter_default",
    "parameter_fields",
    "parse_fillval",
    "parse_number",
    "step_defaults",
    "step_params",
]

#: Reach of each kernel, in input pixels, used to size the tile halo.
_KERNEL_REACH: dict[str, float] = {
    "square": 1.0,
    "point": 1.0,
    "turbo": 1.0,
    "gaussian": 2.0,
    "lanczos2": 3.0,
    "lanczos3": 4.0,
}


@dataclass(frozen=True)
class WcsParameter:
    """One key of ``wcs_pars`` (the custom output grid), with its command-line form.

    Attributes
    ----------
    name : str
        The key (``pixel_scale_ratio``); the option is ``--pixel-scale-ratio``.
    help : str
        Help text.
    parse : callable
        Converts one value given as text.
    n_values : int
        1 for a number, 2 for a pair such as ``crpix``.
    metavar : str or tuple of str, optional
    """

    name: str
    help: str
    parse: Callable[[Any], Any]
    n_values: int = 1
    metavar: Any = None

    @property
    def flag(self) -> str:
        """The long option (``--pixel-scale-ratio``)."""
        return "--" + self.name.replace("_", "-")

    def value(self, given: Any) -> Any:
        """The value passed in ``wcs_pars``: a float, or a tuple for pairs."""
        return tuple(given) if self.n_values > 1 else float(given)


#: The keys of ``wcs_pars`` (as in ``jwst.resample.resample``), in the order of the command line's help.
WCS_PARAMETERS: tuple[WcsParameter, ...] = (
    WcsParameter("pixel_scale_ratio", "output/input pixel scale ratio (default 1.0)", parse_number, metavar="R"),
    WcsParameter(
        "pixel_scale", "output pixel scale in arcsec (overrides --pixel-scale-ratio)", parse_number, metavar="ARCSEC"
    ),
    WcsParameter("output_shape", "output array shape (ny, nx)", parse_positive_int, 2, ("NY", "NX")),
    WcsParameter(
        "rotation",
        "position angle of the output y axis, deg East of North (default: that of the first input)",
        parse_number,
        metavar="DEG",
    ),
    WcsParameter(
        "crpix",
        "reference pixel (x, y), 0-based array coordinates as jwst's crpix (default: the centre of the bounding box)",
        parse_number,
        2,
        ("X", "Y"),
    ),
    WcsParameter("crval", "sky position of the reference pixel, deg", parse_number, 2, ("RA", "DEC")),
)

#: Keys accepted in ``wcs_pars``.
WCS_PARS_KEYS: tuple[str, ...] = tuple(p.name for p in WCS_PARAMETERS)


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
        raise KeyError(
            f"wcs_pars: unsupported key(s) {', '.join(map(repr, unknown))}; supported: {', '.join(WCS_PARS_KEYS)}"
        )
    return dict(wcs_pars)


def default_flag_name_map() -> dict[str, int]:
    """Return the JWST DQ mnemonic map (:data:`dask_resample.dqflags.PIXEL`).

    Returns
    -------
    dict
        Mapping of DQ flag names to bit values.
    """
    return dict(PIXEL)


#: Every variance array the reference can resample, in the order it treats them.
VARIANCE_NAMES: tuple[str, ...] = ("var_rnoise", "var_flat", "var_poisson")


@dataclass(frozen=True)
class ResampleParams:
    """Drizzle and output parameters of one mosaic.

    Names and defaults are those of :class:`jwst.resample.resample.ResampleImage`;
    each field's metadata holds its help text (``"help"``), allowed values
    (``"choices"``), command-line form (``"cli"``, a :class:`CommandLineForm`)
    and check (``"check"``); the parameters shared with outlier detection are
    the :class:`~dask_resample.param_fields.Parameter` objects of
    :mod:`dask_resample.param_fields`. A value given as text is read as the
    command line reads it (:func:`~dask_resample.param_fields.validate_record`).
    ``good_bits`` is kept as given (for the record) and resolved to an integer
    mask in :attr:`good_bits_mask`.

    Raises
    ------
    ValueError
        For an invalid value; the message starts with the parameter's name.
    """

    pixfrac: float = PIXFRAC.field(1.0)
    kernel: str = KERNEL.field("square")
    fillval: float | str | None = FILLVAL.field("NAN")
    weight_type: str = WEIGHT_TYPE.field("ivm")
    good_bits: int | str | None = GOOD_BITS.field(0)
    enable_ctx: bool = switch(True, "do not compute the context (CON) array", "--no-ctx", negate=True)
    enable_var: bool = switch(
        True,
        "do not resample the variance arrays (with --compute-err from_var they "
        "are still resampled to make the error array)",
        "--no-var",
        negate=True,
    )
    report_var: bool = switch(True, "compute but do not store the variance arrays", "--no-report-var", negate=True)
    compute_err: str | None = COMPUTE_ERR.field(None)
    propagate_dq: bool = switch(False, "also resample the DQ array (bitwise OR)", "--propagate-dq")
    pixmap_stepsize: float = PIXMAP_STEPSIZE.field(1)
    pixmap_order: int = PIXMAP_ORDER.field(1)
    include_var_flat: bool = switch(
        True,
        "do not resample var_flat (romancal's default: only var_rnoise and var_poisson)",
        "--no-var-flat",
        negate=True,
    )
    compute_exptime: bool = switch(
        False,
        "drizzle each input's effective exposure time into an exposure-time map "
        "(array 'exptime'; romancal's coadd exposure times)",
        "--compute-exptime",
    )
    flag_name_map: dict[str, int] = field(default_factory=default_flag_name_map, compare=False, repr=False)

    def __post_init__(self) -> None:
        validate_record(self)
        good_bits_mask(self.good_bits, self.flag_name_map)  # unknown mnemonics fail here, before any work

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
            raise TypeError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(cls.names())}"
            )
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
        return good_bits_mask(self.good_bits, self.flag_name_map)

    @property
    def variance_names(self) -> tuple[str, ...]:
        """The variance arrays resampled, in the reference's order (``var_flat`` only with ``include_var_flat``)."""
        return VARIANCE_NAMES if self.include_var_flat else tuple(n for n in VARIANCE_NAMES if n != "var_flat")

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
    return record_fields(ResampleParams)


def parameter_default(f: Field) -> Any:
    """Default of a :class:`ResampleParams` field."""
    return field_default(f)


#: Defaults of jwst's ``ResampleStep`` where they differ from those of ``ResampleImage``
#: (the record's own defaults). The command line and option files use these; the Python
#: API and the facade keep the record's defaults.
STEP_DEFAULTS: Mapping[str, Any] = {
    "good_bits": "~DO_NOT_USE+NON_SCIENCE",
    "compute_err": "from_var",
    "pixmap_stepsize": 1.0,
}


#: Defaults of romancal's ``ResampleStep`` where they differ from the record's own: DQ mnemonics
#: ``~DO_NOT_USE``, a pixel map evaluated every 10 pixels with bicubic interpolation, no
#: ``var_flat`` unless asked, and context, variances, error (from the variances) and the
#: exposure-time map always made, as the step makes them.
ROMAN_STEP_DEFAULTS: Mapping[str, Any] = {
    "good_bits": "~DO_NOT_USE",
    "enable_ctx": True,
    "enable_var": True,
    "compute_err": "from_var",
    "pixmap_stepsize": 10,
    "pixmap_order": 3,
    "include_var_flat": False,
    "compute_exptime": True,
}

#: Mission -> its pipeline step's defaults (differences from the record's defaults).
MISSIONS: Mapping[str, Mapping[str, Any]] = {"jwst": STEP_DEFAULTS, "roman": ROMAN_STEP_DEFAULTS}

#: Mission -> its pixel DQ flag names (for ``good_bits`` mnemonics).
_FLAG_NAME_MAPS: Mapping[str, Mapping[str, int]] = {"jwst": PIXEL, "roman": ROMAN_PIXEL}


def _mission(mission: str) -> str:
    if mission not in MISSIONS:
        raise ValueError(f"mission: expected one of {', '.join(map(repr, MISSIONS))}, got {mission!r}")
    return mission


def step_defaults(mission: str = "jwst") -> dict[str, Any]:
    """Every parameter's default as the mission's ``ResampleStep`` has it (record defaults + its step defaults).

    Parameters
    ----------
    mission : {"jwst", "roman"}
        ``"jwst"``: :data:`STEP_DEFAULTS`; ``"roman"``: :data:`ROMAN_STEP_DEFAULTS`.
    """
    overrides = MISSIONS[_mission(mission)]
    return {f.name: overrides.get(f.name, parameter_default(f)) for f in parameter_fields()}


def flag_name_map_for(mission: str) -> dict[str, int]:
    """The pixel DQ flag names of a mission (``good_bits`` mnemonics)."""
    return dict(_FLAG_NAME_MAPS[_mission(mission)])


def step_params(mission: str, **kwargs: Any) -> ResampleParams:
    """A record with the mission's step defaults, its DQ flag names, and ``kwargs`` over them.

    Parameters
    ----------
    mission : {"jwst", "roman"}
    **kwargs
        Parameter values that replace the step's defaults.
    """
    values = step_defaults(mission)
    unknown = sorted(set(kwargs).difference(values))
    if unknown:
        raise TypeError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(values)}")
    values.update(kwargs)
    return ResampleParams(**values, flag_name_map=flag_name_map_for(mission))
