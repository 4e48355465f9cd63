"""The ``ds.mosaic`` xarray accessor: WCS, sky coordinates, cutouts, FITS.

Importing :mod:`dask_resample` registers the accessor, so every Dataset opened
with :func:`dask_resample.open_mosaic` (or plain ``xarray.open_zarr`` on a
many-to-one mosaic) offers::

    ds.mosaic.wcs               # the output gwcs
    ds.mosaic.fits_wcs          # the same WCS as astropy.wcs.WCS (FITS cards)
    ds.mosaic.world(y, x)       # (ra, dec) in degrees, no 2-D coordinate arrays
    ds.mosaic.pixel(ra, dec)    # (y, x)
    ds.mosaic.skycoord(y, x)    # astropy SkyCoord
    ds.mosaic.cutout(position, size)   # lazy Dataset with its own WCS
    ds.mosaic.exposure_count()  # lazy number of contributing inputs per pixel
    ds.mosaic.to_fits("mosaic_i2d.fits")

Why ``mosaic`` and not ``resample``: ``xarray.Dataset.resample`` is xarray's
own time-resampling method, and an accessor of the same name would shadow it
(xarray warns when an accessor overrides an attribute). The accessor is named
after what it describes instead.

The accessor reads everything it needs from ``ds.attrs["dask_resample"]`` (the
mosaic metadata: ``wcs_asdf``, ``wcs_fits``, ``grid``, ``inputs``), so it keeps
working on Datasets derived with ``isel`` only if their metadata is updated;
:meth:`MosaicAccessor.cutout` does that for you.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..geometry import cutout_box, fits_wcs_from_cards, gwcs_from_text, image_corners_xy, subgrid_metadata
from ..store import FORMAT_KEY, as_location
from .export import EXTENSION_NAMES, write_plain_fits

__all__ = ["MosaicAccessor"]


def _popcount(planes: np.ndarray) -> np.ndarray:
    """Number of set bits of int32 context planes, per element."""
    bits = np.ascontiguousarray(planes, dtype=np.int32).view(np.uint32)
    return np.bitwise_count(bits).astype(np.int32)


# -- the accessor --------------------------------------------------------------
@xr.register_dataset_accessor("mosaic")
class MosaicAccessor:
    """Sky coordinates and products of a dask-resample mosaic Dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        A mosaic (or cutout, or pyramid level) carrying ``attrs["dask_resample"]``.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds
        self._gwcs: Any = None
        self._fits_wcs: Any = None

    # -- metadata --------------------------------------------------------
    @property
    def meta(self) -> Mapping[str, Any]:
        """The mosaic metadata (``attrs["dask_resample"]``).

        Raises
        ------
        ValueError
            If the Dataset carries no mosaic WCS.
        """
        meta = self._ds.attrs.get(FORMAT_KEY)
        if not isinstance(meta, Mapping) or "wcs_asdf" not in meta:
            raise ValueError(
                "ds.mosaic: this Dataset carries no mosaic WCS in attrs['dask_resample']; "
                "open it with dask_resample.open_mosaic(path, group=...)"
            )
        return meta

    @property
    def shape_yx(self) -> tuple[int, int]:
        """Pixel shape ``(ny, nx)`` of the Dataset."""
        return int(self._ds.sizes["y"]), int(self._ds.sizes["x"])

    @property
    def pixel_scale(self) -> float | None:
        """Pixel scale in arcsec (``None`` when not recorded)."""
        value = self.meta.get("grid", {}).get("pixel_scale")
        return None if value is None else float(value)

    @property
    def wcs(self) -> Any:
        """The output gwcs (deserialised from ``wcs_asdf``; cached)."""
        if self._gwcs is None:
            self._gwcs = gwcs_from_text(self.meta["wcs_asdf"])
        return self._gwcs

    @property
    def fits_wcs(self) -> Any:
        """The WCS as :class:`astropy.wcs.WCS`, built from the FITS cards ``wcs_fits``."""
        if self._fits_wcs is None:
            cards = self.meta.get("wcs_fits")
            if not cards:
                raise ValueError("ds.mosaic.fits_wcs: no FITS cards ('wcs_fits') in the mosaic metadata")
            self._fits_wcs = fits_wcs_from_cards(cards)
        return self._fits_wcs

    # -- coordinates -----------------------------------------------------
    def world(self, y: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Sky position of pixel ``(y, x)`` (0-based, pixel centres at integers).

        Parameters
        ----------
        y, x : float or array-like
            Pixel coordinates; broadcast together. Positions outside the frame
            are evaluated too (no bounding box).

        Returns
        -------
        ra, dec : numpy.ndarray
            Degrees (0-d arrays for scalar input).
        """
        yy, xx = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64))
        ra, dec = self.wcs(xx, yy, with_bounding_box=False)
        return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)

    def pixel(self, ra: Any, dec: Any) -> tuple[np.ndarray, np.ndarray]:
        """Pixel ``(y, x)`` of a sky position in degrees (inverse of :meth:`world`).

        Parameters
        ----------
        ra, dec : float or array-like
            Degrees.

        Returns
        -------
        y, x : numpy.ndarray
        """
        rr, dd = np.broadcast_arrays(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64))
        x, y = self.wcs.invert(rr, dd, with_bounding_box=False)
        return np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)

    def skycoord(self, y: Any, x: Any) -> Any:
        """Sky position of pixel ``(y, x)`` as :class:`astropy.coordinates.SkyCoord`."""
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        ra, dec = self.world(y, x)
        frame = str(self.meta.get("wcs_fits", {}).get("RADESYS", "ICRS")).lower()
        return SkyCoord(ra * u.deg, dec * u.deg, frame=frame)

    def footprint(self) -> np.ndarray:
        """Sky positions (degrees) of the four outer corners, shape (4, 2) as (ra, dec)."""
        x, y = image_corners_xy(self.shape_yx)
        ra, dec = self.world(y, x)
        return np.column_stack([ra, dec])

    # -- derived data ----------------------------------------------------
    def exposure_count(self) -> xr.DataArray:
        """Number of inputs that contributed to each pixel (lazy).

        Counts the set bits of the context planes ``con`` (one bit per input)
        and sums them over planes. Chunks follow those of ``con``.

        Returns
        -------
        xarray.DataArray
            int32, dims ``(y, x)``, named ``exposure_count``.

        Raises
        ------
        ValueError
            If the Dataset has no context array (``enable_ctx=False``).
        """
        if "con" not in self._ds:
            raise ValueError("ds.mosaic.exposure_count: no context array 'con' (mosaic made with enable_ctx=False)")
        bits = xr.apply_ufunc(_popcount, self._ds["con"], dask="parallelized", output_dtypes=[np.int32])
        count = bits.sum("plane", dtype=np.int32)
        count.name = "exposure_count"
        count.attrs = {"long_name": "number of contributing inputs"}
        return count

    def contributors(self, y: int, x: int) -> list[str]:
        """File names of the inputs that contributed to pixel ``(y, x)``.

        Parameters
        ----------
        y, x : int
            Pixel indices of this Dataset.

        Returns
        -------
        list of str
            In input order.
        """
        if "con" not in self._ds:
            raise ValueError("ds.mosaic.contributors: no context array 'con' (mosaic made with enable_ctx=False)")
        planes = np.asarray(self._ds["con"].isel(y=int(y), x=int(x)).values, dtype=np.int32).view(np.uint32)
        names = []
        for rec in self.meta.get("inputs", []):
            bit = rec.get("context_bit")
            if bit is None or rec.get("skipped"):
                continue
            plane, k = divmod(int(bit), 32)
            if plane < planes.size and (int(planes[plane]) >> k) & 1:
                names.append(str(rec.get("filename")))
        return names

    def cutout(self, position: Any, size: Any, *, mode: str = "trim") -> xr.Dataset:
        """A lazy cutout centred on a sky position, with its own WCS.

        The cutout's pixel (0, 0) is the parent's pixel ``(y0, x0)``: its
        ``world(0, 0)`` equals the parent's ``world(y0, x0)``; the origin is
        recorded in ``attrs["dask_resample"]["subgrid"]["origin_yx"]``.

        Parameters
        ----------
        position : astropy.coordinates.SkyCoord or (float, float)
            Centre, as a SkyCoord or as ``(ra, dec)`` in degrees.
        size : int, (int, int) or astropy.units.Quantity
            Pixels ``n`` or ``(ny, nx)``, or an angle (scalar or ``(height,
            width)``) converted with the mosaic pixel scale.
        mode : {"trim", "strict"}
            ``"trim"`` clips the cutout to the mosaic; ``"strict"`` raises if
            it does not fit.

        Returns
        -------
        xarray.Dataset
            The selected region (still dask-backed) with updated metadata.

        Raises
        ------
        ValueError
            If the cutout lies outside the mosaic, or ``size``/``mode`` is invalid.
        """
        from astropy.nddata.utils import NoOverlapError, PartialOverlapError

        if mode not in ("trim", "strict"):
            raise ValueError(f"mode: expected 'trim' or 'strict', got {mode!r}")
        ra, dec = _radec(position)
        yc, xc = self.pixel(ra, dec)
        shape = self._size_pixels(size)
        try:
            sl_y, sl_x = cutout_box(self.shape_yx, shape, (float(yc), float(xc)), mode=mode)
        except NoOverlapError:
            raise ValueError(f"position: ({ra:.6f}, {dec:.6f}) deg is outside the mosaic") from None
        except PartialOverlapError:
            raise ValueError(
                f"size: a {shape} cutout at ({ra:.6f}, {dec:.6f}) deg does not fit in the mosaic"
            ) from None
        y0, x0 = sl_y.start, sl_x.start
        out_shape = (sl_y.stop - sl_y.start, sl_x.stop - sl_x.start)
        sub = self._ds.isel(y=sl_y, x=sl_x)
        meta = subgrid_metadata(self.meta, scale=1.0, offset_yx=(y0, x0), shape_yx=out_shape, wcs=self.wcs)
        sub.attrs = {**self._ds.attrs, FORMAT_KEY: meta}
        return sub

    def _size_pixels(self, size: Any) -> tuple[int, int]:
        import astropy.units as u

        if isinstance(size, u.Quantity):
            if size.unit.physical_type == "angle":
                if self.pixel_scale is None:
                    raise ValueError("size: an angular size needs the mosaic pixel scale, which is not recorded")
                pix = np.atleast_1d(size.to_value(u.arcsec)) / self.pixel_scale
            else:
                pix = np.atleast_1d(size.to_value(u.pixel))
            values = [int(math.ceil(v - 1e-9)) for v in pix]
        else:
            values = [int(v) for v in np.atleast_1d(size)]
        if len(values) == 1:
            values = values * 2
        if len(values) != 2 or min(values) < 1:
            raise ValueError(f"size: expected a positive size or (ny, nx), got {size!r}")
        return values[0], values[1]

    # -- products ----------------------------------------------------------
    def to_fits(
        self, path: str | os.PathLike, *, overwrite: bool = False, storage_options: Mapping[str, Any] | None = None
    ) -> Path | str:
        """Write the Dataset as a FITS file with WCS.

        The plain-FITS layout of :func:`dask_resample.products.export.export_fits`
        (:func:`~dask_resample.products.export.write_plain_fits`): extensions ``SCI``
        (data), ``WHT``, ``CON``, ``ERR``, ``VAR_*``, ``DQ``, whichever exist,
        each with the FITS WCS cards. The arrays are computed and appended one
        at a time, so memory holds one array, not the whole product.

        Parameters
        ----------
        path : path-like or URL
            FITS file to write: a local path, or any fsspec URL (``s3://...``),
            where it is made in a local temporary file and uploaded whole.
        overwrite : bool
            Replace an existing file.
        storage_options : mapping, optional
            Options of the URL's file system (credentials, ``endpoint_url``).

        Returns
        -------
        pathlib.Path or str
            The file (its URL when it is not a local path).

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        target = as_location(path, storage_options)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target}: exists; pass overwrite=True to replace it")
        names = [n for n in EXTENSION_NAMES if n in self._ds]
        if not names:
            raise ValueError("ds.mosaic.to_fits: the Dataset holds none of the mosaic arrays")
        arrays = {name: (lambda name=name: np.asarray(self._ds[name].values)) for name in names}
        if target.is_local:
            return write_plain_fits(Path(target.url), arrays, self.meta)
        target.write_with(lambda tmp: write_plain_fits(tmp, arrays, self.meta))
        return target.url


def _radec(position: Any) -> tuple[float, float]:
    if hasattr(position, "icrs") and hasattr(position, "ra"):
        icrs = position.icrs
        return float(icrs.ra.deg), float(icrs.dec.deg)
    try:
        values = np.asarray(position, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty(0)
    if values.shape == (2,):
        return float(values[0]), float(values[1])
    raise ValueError(f"position: expected a SkyCoord or (ra, dec) in degrees, got {position!r}")
