"""Outlier masks: how flagged pixels change an exposure's arrays, and their on-disk form.

The update is that of jwst's imaging outlier detection: flagged pixels get
``DO_NOT_USE | OUTLIER`` in DQ, then every array is made consistent as jwst's
``match_nans_and_flags`` does (a pixel NaN in any of data, err or the
variances, or with ``DO_NOT_USE``, becomes NaN in all of them and gets
``DO_NOT_USE``). :func:`apply_outlier_mask` does it on the model dictionary
that the drivers read, so that an exposure drizzled with its mask applied is
exactly the exposure read back from its ``*_crf.fits`` file.

Masks are stored bit-packed (one bit per pixel) in ``.npy`` files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np

from ..dqflags import PIXEL
from ..store.location import Location
from ._files import load_arrays, save_arrays

__all__ = [
    "NAN_ARRAYS",
    "OUTLIER_BITS",
    "apply_outlier_mask",
    "flagged_arrays",
    "match_nans_and_flags",
    "read_mask",
    "write_mask",
]

#: DQ bits set on a flagged pixel.
OUTLIER_BITS = np.uint32(PIXEL["DO_NOT_USE"] | PIXEL["OUTLIER"])

#: Arrays made NaN together, in jwst's order.
NAN_ARRAYS: tuple[str, ...] = ("data", "err", "var_rnoise", "var_poisson", "var_flat")


def match_nans_and_flags(arrays: MutableMapping[str, Any]) -> None:
    """Make NaNs and ``DO_NOT_USE`` consistent across an exposure's arrays, in place.

    The rule of ``jwst.lib.pipe_utils.match_nans_and_flags`` on a dictionary of
    arrays (missing or ``None`` entries, and arrays of another shape than the
    first, are left alone).
    """
    shape = None
    invalid = None
    for name in NAN_ARRAYS:
        a = arrays.get(name)
        if a is None:
            continue
        if invalid is None:
            shape = np.shape(a)
            invalid = np.isnan(a)
        elif np.shape(a) == shape:
            invalid |= np.isnan(a)
    if invalid is None:
        return
    dq = arrays.get("dq")
    if dq is not None and np.shape(dq) == shape:
        invalid |= (dq & PIXEL["DO_NOT_USE"]).astype(bool)
        dq[invalid] |= np.uint32(PIXEL["DO_NOT_USE"])
    for name in NAN_ARRAYS:
        a = arrays.get(name)
        if a is not None and np.shape(a) == shape:
            a[invalid] = np.nan


def apply_outlier_mask(arrays: MutableMapping[str, Any], mask: np.ndarray) -> int:
    """Flag ``mask`` in an exposure's arrays (in place) as jwst's outlier step does.

    Parameters
    ----------
    arrays : dict
        ``data``, ``dq`` and optionally ``err`` and the variances (writable).
    mask : numpy.ndarray of bool
        Pixels flagged as outliers.

    Returns
    -------
    int
        Number of flagged pixels.
    """
    data = arrays["data"]
    if mask.shape != np.shape(data):
        raise ValueError(f"outlier mask of shape {mask.shape} for data of shape {np.shape(data)}")
    dq = arrays.get("dq")
    if dq is None:
        dq = np.zeros(mask.shape, np.uint32)
        arrays["dq"] = dq
    dq |= mask.astype(np.uint32) * OUTLIER_BITS
    match_nans_and_flags(arrays)
    return int(np.count_nonzero(mask))


def flagged_arrays(model: Mapping[str, Any], mask: np.ndarray | None) -> dict[str, Any]:
    """Copies of a model dictionary's arrays with ``mask`` applied (``None``: copies as read).

    Returns
    -------
    dict
        ``data``, ``dq``, ``err`` and the variances (``None`` where the model has none).
    """
    arrays = {name: (None if model.get(name) is None else np.array(model[name])) for name in (*NAN_ARRAYS, "dq")}
    if mask is not None:
        apply_outlier_mask(arrays, np.asarray(mask, bool))
    return arrays


def write_mask(path: str | os.PathLike | Location, mask: np.ndarray) -> str:
    """Store a boolean mask bit-packed (its shape, then the bits), atomically."""
    return save_arrays(path, np.array(mask.shape, np.int64), np.packbits(mask, axis=None))


def read_mask(path: str | os.PathLike | Location) -> np.ndarray:
    """Read a mask written by :func:`write_mask`."""
    shape_array, packed = load_arrays(path, 2)
    shape = tuple(int(v) for v in shape_array)
    n = int(np.prod(shape))
    return np.unpackbits(packed, count=n).astype(bool).reshape(shape)
