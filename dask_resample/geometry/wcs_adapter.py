"""A thin gwcs-like face for a FITS celestial WCS (with SIP).

``stcal`` works with :class:`gwcs.wcs.WCS` objects. Plain FITS inputs carry an
:class:`astropy.wcs.WCS`; this adapter offers the part of the gwcs interface that
``stcal.resample.utils`` and ``stcal.alignment.util`` use (``pixel_to_world_values``,
``world_to_pixel_values``, ``invert``, frames, shapes and bounding box), so that
plain FITS exposures flow through the very same code as JWST ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FitsImagingWCS"]


class FitsImagingWCS:
    """Wrap an :class:`astropy.wcs.WCS` so that it quacks like an imaging gwcs.

    Parameters
    ----------
    fits_wcs : astropy.wcs.WCS
        A 2-D celestial WCS (SIP distortion is honoured).
    shape_yx : tuple of int
        Shape of the image the WCS describes.
    """

    def __init__(self, fits_wcs: Any, shape_yx: tuple[int, int]) -> None:
        self.fits_wcs = fits_wcs.celestial if hasattr(fits_wcs, "celestial") else fits_wcs
        self._shape_yx = (int(shape_yx[0]), int(shape_yx[1]))
        self.bounding_box = None

    # gwcs-like attributes ---------------------------------------------------
    @property
    def array_shape(self) -> tuple[int, int]:
        """Array shape (ny, nx)."""
        return self._shape_yx

    @property
    def pixel_shape(self) -> tuple[int, int]:
        """Pixel shape (nx, ny)."""
        return self._shape_yx[::-1]

    @property
    def input_frame(self) -> Any:
        """A ``detector`` :class:`gwcs.coordinate_frames.Frame2D`."""
        from astropy import units as u
        from gwcs import coordinate_frames as cf

        return cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))

    @property
    def output_frame(self) -> Any:
        """A ``world`` ICRS :class:`gwcs.coordinate_frames.CelestialFrame`."""
        from astropy import units as u
        from astropy.coordinates import ICRS
        from gwcs import coordinate_frames as cf

        return cf.CelestialFrame(reference_frame=ICRS(), name="world", unit=(u.deg, u.deg))

    @property
    def available_frames(self) -> list[str]:
        """Frame names, as gwcs lists them."""
        return ["detector", "world"]

    # transforms ---------------------------------------------------------------
    def pixel_to_world_values(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (0-based) to (RA, Dec) in degrees."""
        return tuple(self.fits_wcs.pixel_to_world_values(x, y))

    def world_to_pixel_values(self, ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
        """(RA, Dec) in degrees to pixel (0-based)."""
        return tuple(self.fits_wcs.world_to_pixel_values(ra, dec))

    def __call__(self, x: Any, y: Any, with_bounding_box: bool = True, **kwargs: Any) -> tuple:
        return self.pixel_to_world_values(x, y)

    def invert(self, ra: Any, dec: Any, with_bounding_box: bool = True, **kwargs: Any) -> tuple:
        """Inverse transform, as :meth:`gwcs.wcs.WCS.invert`."""
        return self.world_to_pixel_values(ra, dec)

    def footprint(self) -> np.ndarray:
        """Sky coordinates of the four image corners, shape (4, 2)."""
        ny, nx = self._shape_yx
        x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
        y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        ra, dec = self.pixel_to_world_values(x, y)
        return np.column_stack([ra, dec])

    def __getstate__(self) -> dict[str, Any]:
        # the astropy WCS pickles itself whole: SIP, and the lookup-table distortions (CPDIS, DET2IM)
        # that a header (to_header) would drop
        return {"wcs": self.fits_wcs, "shape": self._shape_yx}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.fits_wcs = state["wcs"]
        self._shape_yx = state["shape"]
        self.bounding_box = None
