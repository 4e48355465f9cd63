"""JWST (and Roman WFI) pixel DQ flag names, for ``good_bits`` mnemonics without the jwst extra.

The table is the JWST standard (``stdatamodels.jwst.datamodels.dqflags.pixel``,
documented in the JWST pipeline's "Data Quality Flags" reference). It lives here
so that ``good_bits="~DO_NOT_USE+NON_SCIENCE"`` means the same thing whether or
not jwst/stdatamodels are installed: none of the core dependencies (stcal,
astropy, drizzle) ships the table. ``tests/test_install.py`` checks that it
equals stdatamodels' own when that is installed.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["PIXEL", "ROMAN_PIXEL"]

#: Bits 15 to 25: the same names in the JWST and the Roman WFI tables.
_TELEGRAPH_TO_UNRELIABLE_FLAT = {
    "TELEGRAPH": 1 << 15,
    "NONLINEAR": 1 << 16,
    "BAD_REF_PIXEL": 1 << 17,
    "NO_FLAT_FIELD": 1 << 18,
    "NO_GAIN_VALUE": 1 << 19,
    "NO_LIN_CORR": 1 << 20,
    "NO_SAT_CHECK": 1 << 21,
    "UNRELIABLE_BIAS": 1 << 22,
    "UNRELIABLE_DARK": 1 << 23,
    "UNRELIABLE_SLOPE": 1 << 24,
    "UNRELIABLE_FLAT": 1 << 25,
}

#: DQ flag name -> bit value of the JWST pixel DQ array.
PIXEL = MappingProxyType(
    {
        "GOOD": 0,
        "DO_NOT_USE": 1 << 0,
        "SATURATED": 1 << 1,
        "JUMP_DET": 1 << 2,
        "DROPOUT": 1 << 3,
        "OUTLIER": 1 << 4,
        "PERSISTENCE": 1 << 5,
        "AD_FLOOR": 1 << 6,
        "CHARGELOSS": 1 << 7,
        "RESERVED": 1 << 8,
        "NON_SCIENCE": 1 << 9,
        "DEAD": 1 << 10,
        "HOT": 1 << 11,
        "WARM": 1 << 12,
        "LOW_QE": 1 << 13,
        "RC": 1 << 14,
        **_TELEGRAPH_TO_UNRELIABLE_FLAT,
        "OPEN": 1 << 26,
        "ADJ_OPEN": 1 << 27,
        "FLUX_ESTIMATED": 1 << 28,
        "MSA_FAILED_OPEN": 1 << 29,
        "OTHER_BAD_PIXEL": 1 << 30,
        "REFERENCE_PIXEL": 1 << 31,
    }
)

#: DQ flag name -> bit value of the Roman WFI pixel DQ array (``roman_datamodels.dqflags.pixel``,
#: checked against it by ``tests/test_roman_parity.py``): the map of ``good_bits`` mnemonics
#: for Roman inputs.
ROMAN_PIXEL = MappingProxyType(
    {
        "GOOD": 0,
        "DO_NOT_USE": 1 << 0,
        "SATURATED": 1 << 1,
        "JUMP_DET": 1 << 2,
        "DROPOUT": 1 << 3,
        "GW_AFFECTED_DATA": 1 << 4,
        "PERSISTENCE": 1 << 5,
        "AD_FLOOR": 1 << 6,
        "OUTLIER": 1 << 7,
        "UNRELIABLE_ERROR": 1 << 8,
        "NON_SCIENCE": 1 << 9,
        "DEAD": 1 << 10,
        "HOT": 1 << 11,
        "WARM": 1 << 12,
        "LOW_QE": 1 << 13,
        **_TELEGRAPH_TO_UNRELIABLE_FLAT,
        "RESERVED_5": 1 << 26,
        "RESERVED_6": 1 << 27,
        "UNRELIABLE_RESET": 1 << 28,
        "RESERVED_7": 1 << 29,
        "OTHER_BAD_PIXEL": 1 << 30,
        "REFERENCE_PIXEL": 1 << 31,
    }
)
