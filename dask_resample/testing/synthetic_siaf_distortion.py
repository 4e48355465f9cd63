"""Instrument setups and SIAF distortion models of the synthetic SIAF exposures (:mod:`.synthetic_siaf`).

:data:`INSTRUMENT_SETUPS` names the apertures of each instrument setup;
:func:`siaf_distortion` builds the ``detector -> v2v3`` model the pipeline
reads from a CRDS ``distortion`` reference file, from the SIAF polynomials of
:mod:`pysiaf` (imported when a model is built: the ``test`` extra).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.modeling import models

__all__ = ["INSTRUMENT_SETUPS", "InstrumentSetup", "SiafDetector", "illuminated_box_origin", "siaf_distortion"]


@dataclass(frozen=True)
class SiafDetector:
    """One detector: its jwst name and its full-frame SIAF aperture."""

    detector: str
    aperture: str


@dataclass(frozen=True)
class InstrumentSetup:
    """Instrument configuration of a synthetic dataset.

    Attributes
    ----------
    instrument : str
        ``meta.instrument.name`` (``"NIRCAM"`` or ``"MIRI"``); also the pysiaf instrument.
    exp_type : str
        ``meta.exposure.type``.
    detectors : tuple of SiafDetector
        Detectors usable by one exposure, in order.
    filter, pupil, channel : str or None
        Optical element metadata.
    illuminated_aperture : str or None
        SIAF aperture whose science-frame extent is the full-frame bounding box
        (MIRI imager: ``MIRIM_ILLUM``); ``None``: the pipeline's default (the array).
    psf_sigma_arcsec : float
        Typical point-source sigma (sources are scaled to it).
    """

    instrument: str
    exp_type: str
    detectors: tuple[SiafDetector, ...]
    filter: str
    pupil: str | None = None
    channel: str | None = None
    illuminated_aperture: str | None = None
    psf_sigma_arcsec: float = 0.032


#: Supported configurations (``instrument=`` of :func:`write_siaf_dataset`).
INSTRUMENT_SETUPS: dict[str, InstrumentSetup] = {
    "nircam_sw": InstrumentSetup(
        "NIRCAM", "NRC_IMAGE",
        tuple(SiafDetector(f"NRC{m}{k}", f"NRC{m}{k}_FULL") for m in "AB" for k in (1, 2, 3, 4)),
        filter="F200W", pupil="CLEAR", channel="SHORT", psf_sigma_arcsec=0.032,
    ),
    "nircam_lw": InstrumentSetup(
        "NIRCAM", "NRC_IMAGE",
        (SiafDetector("NRCALONG", "NRCA5_FULL"), SiafDetector("NRCBLONG", "NRCB5_FULL")),
        filter="F444W", pupil="CLEAR", channel="LONG", psf_sigma_arcsec=0.062,
    ),
    "miri": InstrumentSetup(
        "MIRI", "MIR_IMAGE", (SiafDetector("MIRIMAGE", "MIRIM_FULL"),),
        filter="F770W", illuminated_aperture="MIRIM_ILLUM", psf_sigma_arcsec=0.11,
    ),
}  # fmt: skip


# --------------------------------------------------------------------------- SIAF
@functools.lru_cache(maxsize=4)
def _siaf(instrument: str) -> Any:
    import pysiaf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysiaf.Siaf(instrument)


def _aperture(instrument: str, name: str) -> Any:
    siaf = _siaf(instrument)
    if name not in siaf.apernames:
        raise ValueError(f"SIAF aperture {name!r} does not exist for {instrument}")
    return siaf[name]


def _siaf_polynomial(coefficients: np.ndarray, degree: int, name: str) -> models.Polynomial2D:
    """``Polynomial2D`` from coefficients in the SIAF (JWST) layout.

    The SIAF layout lists ``a[i, j]`` (the coefficient of ``x**(i-j) * y**j``)
    for ``i = 0..degree`` and ``j = 0..i``.
    """
    params = {}
    k = 0
    for i in range(degree + 1):
        for j in range(i + 1):
            params[f"c{i - j}_{j}"] = float(coefficients[k])
            k += 1
    return models.Polynomial2D(degree, name=name, **params)


def _ideal_to_v2v3(angle_deg: float, parity: int, v2_ref: float, v3_ref: float) -> models.Model:
    """Ideal -> V2/V3 (arcsec), the formula of ``stdatamodels``' ``IdealToV2V3`` in serialisable models.

    ``v2 = v2_ref + parity * x * cos(a) + y * sin(a)``,
    ``v3 = v3_ref - parity * x * sin(a) + y * cos(a)``.
    """
    a = math.radians(angle_deg)
    rot_v2 = models.Polynomial2D(1, c0_0=0.0, c1_0=parity * math.cos(a), c0_1=math.sin(a), name="idl2v2")
    rot_v3 = models.Polynomial2D(1, c0_0=0.0, c1_0=-parity * math.sin(a), c0_1=math.cos(a), name="idl2v3")
    return models.Mapping((0, 1, 0, 1)) | (rot_v2 & rot_v3) | (models.Shift(v2_ref) & models.Shift(v3_ref))


def _v2v3_to_ideal(angle_deg: float, parity: int, v2_ref: float, v3_ref: float) -> models.Model:
    """Exact inverse of :func:`_ideal_to_v2v3`."""
    a = math.radians(angle_deg)
    inv_x = models.Polynomial2D(1, c0_0=0.0, c1_0=parity * math.cos(a), c0_1=-parity * math.sin(a), name="v2v3_to_idlx")
    inv_y = models.Polynomial2D(1, c0_0=0.0, c1_0=math.sin(a), c0_1=math.cos(a), name="v2v3_to_idly")
    return (models.Shift(-v2_ref) & models.Shift(-v3_ref)) | models.Mapping((0, 1, 0, 1)) | (inv_x & inv_y)


def siaf_distortion(instrument: str, aperture: str, illuminated_aperture: str | None = None) -> models.Model:
    """Full-frame ``detector -> v2v3`` model of a SIAF aperture, with its inverse.

    The model has the structure of the CRDS imaging ``distortion`` reference
    files: 0-based detector pixels -> 1-based science pixels relative to
    ``(XSciRef, YSciRef)`` -> ``Sci2IdlX/Y`` polynomials (ideal frame, arcsec)
    -> ``IdealToV2V3`` (``V3IdlYAngle``, ``VIdlParity``, ``V2Ref``, ``V3Ref``).
    The inverse uses SIAF's ``Idl2SciX/Y`` polynomials.

    Parameters
    ----------
    instrument : str
        pysiaf instrument name (``"NIRCam"``, ``"MIRI"``...).
    aperture : str
        Full-frame aperture (e.g. ``"NRCA1_FULL"``, ``"MIRIM_FULL"``).
    illuminated_aperture : str, optional
        Aperture (inside ``aperture``) whose extent becomes the model's
        bounding box, as the CRDS file of the MIRI imager carries one
        (``"MIRIM_ILLUM"``). Without it the model has no bounding box and the
        pipeline uses the array's.

    Returns
    -------
    astropy.modeling.Model
        Inputs ``(x, y)`` in 0-based full-frame pixels, outputs ``(v2, v3)`` arcsec.
    """
    ap = _aperture(instrument, aperture)
    coeffs = ap.get_polynomial_coefficients()
    degree = int(ap.Sci2IdlDeg)
    sci2idl = _siaf_polynomial(coeffs["Sci2IdlX"], degree, "sci2idl_x") & _siaf_polynomial(
        coeffs["Sci2IdlY"], degree, "sci2idl_y"
    )
    idl2sci = _siaf_polynomial(coeffs["Idl2SciX"], degree, "idl2sci_x") & _siaf_polynomial(
        coeffs["Idl2SciY"], degree, "idl2sci_y"
    )
    x_ref, y_ref = float(ap.XSciRef), float(ap.YSciRef)
    angle, parity = float(ap.V3IdlYAngle), int(ap.VIdlParity)
    v2_ref, v3_ref = float(ap.V2Ref), float(ap.V3Ref)
    # 0-based detector pixel -> 1-based science pixel relative to the reference pixel
    to_ref = models.Shift(1.0 - x_ref, name="x_to_sciref") & models.Shift(1.0 - y_ref, name="y_to_sciref")
    from_ref = models.Shift(x_ref - 1.0, name="x_from_sciref") & models.Shift(y_ref - 1.0, name="y_from_sciref")
    forward = to_ref | models.Mapping((0, 1, 0, 1)) | sci2idl | _ideal_to_v2v3(angle, parity, v2_ref, v3_ref)
    inverse = _v2v3_to_ideal(angle, parity, v2_ref, v3_ref) | models.Mapping((0, 1, 0, 1)) | idl2sci | from_ref
    forward.inverse = inverse
    forward.name = f"{aperture}_distortion"
    if illuminated_aperture is not None:
        from astropy.modeling import bind_bounding_box

        x0, y0 = illuminated_box_origin(instrument, illuminated_aperture)
        ill = _aperture(instrument, illuminated_aperture)
        # 0-based full-frame pixel edges of the illuminated region (x first: order "F")
        bbox = ((x0 - 0.5, x0 + int(ill.XSciSize) - 0.5), (y0 - 0.5, y0 + int(ill.YSciSize) - 0.5))
        bind_bounding_box(forward, bbox, order="F")
    return forward


def illuminated_box_origin(instrument: str, aperture: str) -> tuple[int, int]:
    """0-based full-frame pixel ``(x, y)`` of the first pixel of ``aperture``."""
    xs, ys = _aperture(instrument, aperture).dms_corner()
    return int(xs) - 1, int(ys) - 1
