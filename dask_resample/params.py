"""Resampling parameters: one validated, frozen record shared by every task.

The names and defaults are those of :class:`jwst.resample.resample.ResampleImage`.
Validation happens here, on the client, before any pixel is read, so that a bad
parameter fails with one line naming it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.nddata.bitmask import interpret_bit_flags

__all__ = [
    "KERNELS",
    "WCS_PARS_KEYS",
    "ResampleParams",
    "check_wcs_pars",
    "default_flag_name_map",
    "parse_fillval",
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

_WEIGHT_TYPES = ("ivm", "exptime")
_COMPUTE_ERR = (None, "from_var", "driz_err")

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


@dataclass(frozen=True)
class ResampleParams:
    """Drizzle and output parameters of one mosaic.

    Parameters mirror :class:`jwst.resample.resample.ResampleImage`; see its
    documentation for their meaning. ``good_bits`` is kept as given (for the
    record) and resolved to an integer mask in :attr:`good_bits_mask`.
    """

    pixfrac: float = 1.0
    kernel: str = "square"
    fillval: Any = "NAN"
    weight_type: str = "ivm"
    good_bits: Any = 0
    enable_ctx: bool = True
    enable_var: bool = True
    report_var: bool = True
    compute_err: str | None = None
    propagate_dq: bool = False
    pixmap_stepsize: float = 1
    pixmap_order: int = 1
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
        if self.weight_type not in _WEIGHT_TYPES:
            raise ValueError(f"weight_type: expected 'ivm' or 'exptime', got {self.weight_type!r}")
        if self.compute_err not in _COMPUTE_ERR:
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
    def fillval_str(self) -> str:
        """``fillval`` as the string handed to drizzle."""
        return "INDEF" if self.fillval is None else str(self.fillval)

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
