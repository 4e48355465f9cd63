"""WCS conversions: gwcs -> FITS cards, stored FITS cards -> astropy WCS, gwcs <-> ASDF text.

Free of I/O, as :mod:`.geometry` (which re-exports every name here).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

__all__ = ["fits_wcs_from_cards", "gwcs_from_text", "gwcs_to_text", "load_asdf_extensions", "wcs_to_fits_header"]


def wcs_to_fits_header(wcs: Any) -> dict[str, Any]:
    """FITS WCS cards of an imaging gwcs (exact for ``FITSImagingWCSTransform``).

    Returns
    -------
    dict
        Header keyword -> value (CTYPE, CRPIX (1-based), CRVAL, CDELT, PC, ...).
    """
    from gwcs.fitswcs import FITSImagingWCSTransform

    t = wcs.forward_transform
    ny, nx = wcs.array_shape
    if isinstance(t, FITSImagingWCSTransform):
        code = t.projection.prjprm.code
        hdr = {
            "WCSAXES": 2,
            "CTYPE1": f"RA---{code}",
            "CTYPE2": f"DEC--{code}",
            "CUNIT1": "deg",
            "CUNIT2": "deg",
            "CRPIX1": float(t.crpix[0]) + 1.0,
            "CRPIX2": float(t.crpix[1]) + 1.0,
            "CRVAL1": float(t.crval[0]),
            "CRVAL2": float(t.crval[1]),
            "CDELT1": float(t.cdelt[0]),
            "CDELT2": float(t.cdelt[1]),
            "PC1_1": float(t.pc[0][0]),
            "PC1_2": float(t.pc[0][1]),
            "PC2_1": float(t.pc[1][0]),
            "PC2_2": float(t.pc[1][1]),
            "RADESYS": "ICRS",
        }
    else:
        sip = wcs.to_fits_sip(bounding_box=((-0.5, nx - 0.5), (-0.5, ny - 0.5)), max_pix_error=0.01)
        hdr = {k: sip[k] for k in sip if k not in ("COMMENT", "HISTORY", "")}
    hdr["NAXIS1"] = int(nx)
    hdr["NAXIS2"] = int(ny)
    return hdr


def gwcs_to_text(wcs: Any) -> str:
    """Serialise a gwcs to base64 ASDF text (round-trips exactly)."""
    import asdf

    buf = io.BytesIO()
    asdf.AsdfFile({"wcs": wcs}).write_to(buf, all_array_storage="inline")
    return base64.b64encode(_canonical_asdf(buf.getvalue())).decode("ascii")


def load_asdf_extensions() -> int:
    """Load ASDF's extensions and schemas in this process, as the first :func:`gwcs_to_text` would.

    ASDF loads every installed extension (their manifests parsed as YAML) and resource
    mapping on first use: about a second in a fresh process. Planning runs this on one
    worker while the others describe the inputs, and the grid's ASDF text is then made
    there (:func:`dask_resample.planning.mosaic.plan_mosaic`).

    Returns
    -------
    int
        The number of extensions loaded.
    """
    import asdf

    config = asdf.get_config()
    config.resource_manager  # noqa: B018 - loads the resource mappings (the schemas)
    asdf.AsdfFile({"n": 1}).write_to(io.BytesIO())  # and what a first write sets up
    return len(config.extensions)


def _canonical_asdf(raw: bytes) -> bytes:
    """Sort the ASDF history's extension list, whose order otherwise varies between processes.

    Only YAML-only files (arrays inline) are touched, so the result stays a valid
    ASDF file; the same WCS then always serialises to the same bytes.
    """
    if b"\xd3BLK" in raw:
        return raw
    lines = raw.decode("utf-8").split("\n")
    try:
        start = lines.index("  extensions:") + 1
    except ValueError:
        return raw
    end = start
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    entries: list[list[str]] = []
    for line in lines[start:end]:
        if line.startswith("  - "):
            entries.append([line])
        elif entries:
            entries[-1].append(line)
        else:
            return raw
    ordered = [ln for entry in sorted(entries, key=lambda e: "\n".join(e)) for ln in entry]
    return "\n".join(lines[:start] + ordered + lines[end:]).encode("utf-8")


def gwcs_from_text(text: str) -> Any:
    """Inverse of :func:`gwcs_to_text`."""
    import asdf

    with asdf.open(io.BytesIO(base64.b64decode(text)), lazy_load=False, memmap=False) as af:
        wcs = af.tree["wcs"]
    return wcs


def fits_wcs_from_cards(cards: Mapping[str, Any]) -> Any:
    """Build an :class:`astropy.wcs.WCS` from stored FITS WCS cards.

    Parameters
    ----------
    cards : mapping
        Keyword -> value, as in ``attrs["dask_resample"]["wcs_fits"]``.

    Returns
    -------
    astropy.wcs.WCS
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    return WCS(header, naxis=2)
