"""What the passes drizzle of an exposure, or of a box of it: data, weights, variances, romancal's exposure-time image.

Every array here is an element-wise function of the input's arrays, so the box of an
exposure that :mod:`dask_resample.drizzle.windows` drizzles gets the same values as the
same box of the whole exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..params import ResampleParams

__all__ = ["drizzle_inputs", "exptime_image"]


def drizzle_inputs(
    model: Mapping[str, Any], params: ResampleParams, *, need_var: bool, need_err: bool
) -> dict[str, Any]:
    """What the passes drizzle of an exposure (or of a box of it: every array here is element-wise).

    Returns
    -------
    dict
        ``data`` (less the background level unless subtracted), ``weight`` (stcal's
        ``build_driz_weight``), ``dq``, ``err``, ``variances`` (name -> array, the
        ``params.variance_names`` the input has), ``exptime_image`` (romancal's, or
        ``None``) and ``exptime``.
    """
    from stcal.resample.utils import build_driz_weight

    data = np.asarray(model["data"])
    weight = build_driz_weight(
        model, weight_type=params.weight_type, good_bits=params.good_bits, flag_name_map=params.flag_name_map
    )
    level = model.get("level")
    if not model.get("subtracted") and level is not None:
        data = data - level
    variances = {}
    if need_var:
        for name in params.variance_names:
            var = model.get(name)
            if var is None or np.size(var) == 0 or np.shape(var) != data.shape:
                continue
            variances[name] = var  # drizzled as sqrt(var), taken one array at a time
    return {
        "data": data,
        "weight": weight,
        "dq": model.get("dq") if params.propagate_dq else None,
        "err": model.get("err") if need_err else None,
        "variances": variances,
        "exptime_image": exptime_image(model, params) if params.compute_exptime else None,
        "exptime": model["exposure_time"],
    }


def exptime_image(model: Mapping[str, Any], params: ResampleParams) -> tuple[np.ndarray, np.ndarray]:
    """What romancal's ``ExptimeResampler`` drizzles for one input: (constant image, unit weights).

    The image holds the input's ``effective_exposure_time`` everywhere (its
    ``exposure_time`` when it has none); the weights are 1 on pixels whose DQ
    ``good_bits`` accept, else 0.
    """
    from stcal.resample.utils import build_driz_weight

    data = model["data"]
    value = model.get("effective_exposure_time")
    if value is None:
        value = model["exposure_time"]
    image = np.full(np.shape(data), value)
    weight = build_driz_weight(
        {"data": data, "dq": model["dq"]},
        weight_type=None,
        good_bits=params.good_bits,
        flag_name_map=params.flag_name_map,
    )
    return image, weight
