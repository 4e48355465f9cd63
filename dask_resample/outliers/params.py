"""Outlier-detection parameters: one validated, frozen record, and each mission's rules.

:class:`OutlierParams` holds the imaging parameters of jwst's
``OutlierDetectionStep`` (jwst 3.0) with the step's names and defaults; the
help text, allowed values, command-line form and check of each live in its field
metadata, as for :class:`~dask_resample.params.ResampleParams`, with which it
shares the definitions of the drizzle parameters (:mod:`dask_resample.param_fields`:
a record may give its own default, help text and subset of allowed values). The drizzle of
each exposure group onto the common grid uses :meth:`OutlierParams.resample_params`,
the parameters the step gives ``ResampleImage`` (no context, no variances, no
error array).

The record's ``mission`` selects the rules of that mission's step
(:class:`OutlierRules`, :data:`OUTLIER_RULES`): jwst's, or romancal's
``OutlierDetectionStep``, which has other defaults (:data:`ROMAN_OUTLIER_DEFAULTS`),
always weights by inverse variance (``weight_type`` is accepted and ignored),
blots with ``fillval`` outside the median, flags DQ only (Roman's ``DO_NOT_USE |
OUTLIER``, no NaN) and records a skipped step as ``"SKIPPED"``.
:func:`outlier_step_params` makes a record with a mission's defaults.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import Field, asdict, dataclass, field, replace
from typing import Any

from ..param_fields import (
    FILLVAL,
    GOOD_BITS,
    KERNEL,
    PIXFRAC,
    PIXMAP_ORDER,
    PIXMAP_STEPSIZE,
    WEIGHT_TYPE,
    CommandLineForm,
    Parameter,
    check_finite,
    field_default,
    parse_number,
    record_fields,
    switch,
    validate_record,
)
from ..params import MISSIONS, ResampleParams, flag_name_map_for

__all__ = [
    "GROUP_DRIZZLE",
    "OUTLIER_KERNELS",
    "OUTLIER_RULES",
    "ROMAN_OUTLIER_DEFAULTS",
    "RULE_FIELDS",
    "OutlierParams",
    "OutlierRules",
    "outlier_default",
    "outlier_fields",
    "outlier_step_params",
]

#: Kernels the step accepts.
OUTLIER_KERNELS: tuple[str, ...] = ("square", "point", "turbo")


def _pair_text(text: Any) -> Any:
    """A pair as given: text (``"5.0 4.0"``, the step's form) or a sequence of two numbers."""
    return text if isinstance(text, (list, tuple)) else str(text)


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
    if any(isinstance(p, bool) for p in parts):
        raise ValueError(f"{name}: expected two numbers such as '5.0 4.0', got {value!r}")
    try:
        a, b = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected two numbers such as '5.0 4.0', got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name}: expected two finite numbers, got {value!r}")
    return a, b


def _check_pair(name: str, value: Any, choices: tuple[Any, ...] | None) -> Any:
    _parse_pair(name, value)
    return value


@dataclass(frozen=True)
class OutlierParams:
    """Parameters of imaging outlier detection (names and defaults of jwst's ``OutlierDetectionStep``).

    Raises
    ------
    ValueError
        For an invalid value; the message starts with the parameter's name.
    """

    weight_type: str = WEIGHT_TYPE.field("ivm", help="input weighting of the group drizzle and of the median")
    pixfrac: float = PIXFRAC.field(1.0, help="pixel shrink factor of the group drizzle, in (0, 1]")
    kernel: str = KERNEL.field("square", help="drizzle kernel of the group drizzle", choices=OUTLIER_KERNELS)
    fillval: float | str | None = FILLVAL.field("NAN", help="value of group-image pixels without input")
    maskpt: float = Parameter(
        "fraction of each group's mean weight below which its pixels are left out of the median",
        CommandLineForm("--maskpt", parse_number, "F"),
        check_finite,
    ).field(0.7)
    snr: str = Parameter(
        "signal-to-noise thresholds before and after smoothing",
        CommandLineForm("--snr", _pair_text, "'S1 S2'"),
        _check_pair,
    ).field("5.0 4.0")
    scale: str = Parameter(
        "scales of the blot derivative before and after smoothing",
        CommandLineForm("--scale", _pair_text, "'F1 F2'"),
        _check_pair,
    ).field("1.2 0.7")
    backg: float = Parameter(
        "background level added to the blotted median", CommandLineForm("--backg", parse_number, "LEVEL"), check_finite
    ).field(0.0)
    resample_data: bool = switch(
        True,
        "take the median of the inputs on their own pixel grid (all inputs of one shape), without drizzling",
        "--no-resample-data",
        negate=True,
    )
    good_bits: int | str | None = GOOD_BITS.field("~DO_NOT_USE", help="DQ flags treated as good")
    pixmap_stepsize: float = PIXMAP_STEPSIZE.field(1.0, help="pixel-map sampling step (1: every pixel)")
    pixmap_order: int = PIXMAP_ORDER.field(1)
    save_intermediate_results: bool = switch(
        False,
        "also write the group images and the median (Zarr and FITS) and the blotted images (FITS)",
        "--save-intermediate-results",
    )
    #: Whose step's rules apply (:data:`OUTLIER_RULES`); ``None``: decided from the inputs
    #: (``"roman"`` for Roman WFI inputs, else ``"jwst"``). Not a parameter of the step.
    mission: str | None = field(default=None, compare=True)
    #: romancal's ``resample_on_skycell`` (Roman rules only): the median grid is the skycell the
    #: association names (``skycell_wcs_info`` or ``target``), when there is one. Not a parameter of jwst's step.
    resample_on_skycell: bool = field(default=True, compare=True)

    def __post_init__(self) -> None:
        if self.mission is not None and self.mission not in OUTLIER_RULES:
            raise ValueError(f"mission: expected one of {', '.join(map(repr, OUTLIER_RULES))}, got {self.mission!r}")
        validate_record(self)
        self.resample_params()  # validates good_bits against the DQ flag names

    @property
    def rules(self) -> OutlierRules:
        """The rules of the record's mission (jwst's when the mission is not decided yet)."""
        return OUTLIER_RULES[self.mission or "jwst"]

    def with_mission(self, mission: str) -> OutlierParams:
        """The same parameters under ``mission``'s rules (the values are kept as they are)."""
        return self if self.mission == mission else replace(self, mission=mission)

    @property
    def blot_fill(self) -> float:
        """Value of blotted pixels that fall outside the median.

        NaN under jwst's rules; ``fillval`` under romancal's (``INDEF`` or none: 0), as its
        step hands ``fillval`` to ``gwcs_blot``.
        """
        if not self.rules.blot_with_fillval:
            return math.nan
        text = "INDEF" if self.fillval is None else str(self.fillval).strip()
        return 0.0 if text.upper() == "INDEF" else float(text)

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
            base = params.as_kwargs() | {name: getattr(params, name) for name in RULE_FIELDS}
        elif params is not None:
            base = dict(params)
        base.update(kwargs)
        unknown = sorted(set(base) - {*cls.names(), *RULE_FIELDS})
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
        """The drizzle parameters of the group images, as the step gives them to ``ResampleImage``.

        The parameters both records have are this record's; the others are
        :data:`GROUP_DRIZZLE` (no context, no variances, no error array, no DQ).
        The mission's rules fix the weighting when its step does
        (:attr:`OutlierRules.weight_type`) and give the DQ flag names.
        """
        shared = {name: getattr(self, name) for name in ResampleParams.names() if name in self.names()}
        rules = self.rules
        if rules.weight_type is not None:
            shared["weight_type"] = rules.weight_type
        return ResampleParams(**shared, **GROUP_DRIZZLE, flag_name_map=flag_name_map_for(self.mission or "jwst"))


#: The drizzle parameters the step fixes for the group images (the others are :class:`OutlierParams`').
GROUP_DRIZZLE: Mapping[str, Any] = {
    "enable_ctx": False,
    "enable_var": False,
    "report_var": False,
    "compute_err": None,
    "propagate_dq": False,
}


@dataclass(frozen=True)
class OutlierRules:
    """What a mission's ``OutlierDetectionStep`` does differently (data, not code).

    How flags are written is the input format's (its driver's ``write_flagged``):
    jwst's files get ``DO_NOT_USE | OUTLIER`` and NaN, Roman files Roman's
    ``DO_NOT_USE | OUTLIER`` in DQ only.

    Attributes
    ----------
    defaults : mapping
        The step's defaults where they differ from :class:`OutlierParams`' own.
    weight_type : str or None
        The weighting the step always uses for the group drizzle and the median
        without resampling (``weight_type`` is then accepted and ignored); ``None``:
        ``weight_type`` is used.
    blot_with_fillval : bool
        Blotted pixels outside the median get ``fillval`` (else NaN).
    stored_variance_weights : bool
        Without resampling, the weights are built from the arrays as the input
        stores them (romancal hands ``build_driz_weight`` the datamodel: a file
        without ``var_rnoise`` gets unit weights), not from the rebuilt ones.
    skipped_status : str
        ``cal_step.outlier_detection`` when there are fewer than two inputs.
    suffix : str
        Suffix of the written files (``<root>_<suffix>.<ext>``).
    """

    defaults: Mapping[str, Any]
    weight_type: str | None
    blot_with_fillval: bool
    stored_variance_weights: bool
    skipped_status: str
    suffix: str


#: Fields of :class:`OutlierParams` that are not parameters of jwst's step (no command-line form).
RULE_FIELDS: tuple[str, ...] = ("mission", "resample_on_skycell")

#: Defaults of romancal's ``OutlierDetectionStep`` where they differ from :class:`OutlierParams`' own.
ROMAN_OUTLIER_DEFAULTS: Mapping[str, Any] = {
    "fillval": "NaN",
    "pixmap_stepsize": 10.0,
    "pixmap_order": 3,
}

#: Mission -> the rules of its ``OutlierDetectionStep`` (jwst 3.0, romancal 1.1).
OUTLIER_RULES: Mapping[str, OutlierRules] = {
    "jwst": OutlierRules(
        defaults={},
        weight_type=None,
        blot_with_fillval=False,
        stored_variance_weights=False,
        skipped_status="FAILED",
        suffix="crf",
    ),
    # romancal's step gives ResampleData and build_driz_weight "ivm" whatever weight_type is (the latter the
    # datamodel itself), hands fillval to gwcs_blot; its MosaicPipeline saves the step's outputs with the
    # suffix "outlier_detection"
    "roman": OutlierRules(
        defaults=ROMAN_OUTLIER_DEFAULTS,
        weight_type="ivm",
        blot_with_fillval=True,
        stored_variance_weights=True,
        skipped_status="SKIPPED",
        suffix="outlier_detection",
    ),
}
assert set(OUTLIER_RULES) == set(MISSIONS)


def outlier_step_params(
    mission: str, params: OutlierParams | Mapping[str, Any] | None = None, **kwargs: Any
) -> OutlierParams:
    """A record under ``mission``'s rules, with its step's defaults below ``params`` and ``kwargs``.

    Parameters
    ----------
    mission : {"jwst", "roman"}
    params : OutlierParams or mapping, optional
        Values given as one record (all its values are kept) or a mapping.
    **kwargs
        Values over those.

    Raises
    ------
    TypeError
        For an unknown parameter name.
    ValueError
        For an unknown mission or an invalid value.
    """
    if mission not in OUTLIER_RULES:
        raise ValueError(f"mission: expected one of {', '.join(map(repr, OUTLIER_RULES))}, got {mission!r}")
    if isinstance(params, OutlierParams):
        given: dict[str, Any] = params.as_kwargs() | {"resample_on_skycell": params.resample_on_skycell}
    else:
        given = dict(params or {})
    given.update(kwargs)
    given.pop("mission", None)
    return OutlierParams.from_kwargs({**OUTLIER_RULES[mission].defaults, **given}, mission=mission)


def outlier_fields() -> Iterator[Field]:
    """The fields of :class:`OutlierParams`."""
    return record_fields(OutlierParams)


def outlier_default(f: Field) -> Any:
    """Default of a field."""
    return field_default(f)
