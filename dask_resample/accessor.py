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

import copy
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .store import FORMAT_KEY, gwcs_from_text, gwcs_to_text

__all__ = ["MosaicAccessor", "affine_fits_header", "affine_gwcs", "subgrid_metadata"]

#: FITS extension names of the arrays, in the order of a jwst ``i2d`` file.
FITS_EXTENSIONS = {
    "data": "SCI",
    "wht": "WHT",
    "con": "CON",
    "err": "ERR",
    "var_rnoise": "VAR_RNOISE",
    "var_poisson": "VAR_POISSON",
    "var_flat": "VAR_FLAT",
    "dq": "DQ",
}


# -- WCS of a pixel sub-grid -------------------------------------------------
def affine_gwcs(wcs: Any, *, scale: float, offset_yx: tuple[float, float], shape_yx: tuple[int, int]) -> Any:
    """A gwcs whose pixel ``(y, x)`` is pixel ``(scale*y + oy, scale*x + ox)`` of ``wcs``.

    Cutouts use ``scale=1`` and the cutout origin as offset; pyramid levels use
    ``scale=2**k`` and offset ``(2**k - 1) / 2`` (the centre of the block).

    Parameters
    ----------
    wcs : gwcs.WCS
        The parent WCS.
    scale : float
        Size of a new pixel in parent pixels.
    offset_yx : (float, float)
        Parent pixel coordinates of the new pixel (0, 0).
    shape_yx : (int, int)
        Shape of the new grid; sets the bounding box and ``array_shape``.

    Returns
    -------
    gwcs.WCS
    """
    import gwcs
    from astropy.modeling.models import Identity, Scale, Shift

    def axis(offset: float) -> Any:
        model = Identity(1)
        if scale != 1:
            model = Scale(float(scale))
        if offset != 0:
            model = Shift(float(offset)) if scale == 1 else model | Shift(float(offset))
        return model

    oy, ox = (float(v) for v in offset_yx)
    forward = (axis(ox) & axis(oy)) | wcs.forward_transform
    new = gwcs.WCS(forward_transform=forward, input_frame=wcs.input_frame, output_frame=wcs.output_frame)
    ny, nx = (int(v) for v in shape_yx)
    new.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    new.array_shape = (ny, nx)
    return new


def affine_fits_header(
    cards: Mapping[str, Any], *, scale: float, offset_yx: tuple[float, float], shape_yx: tuple[int, int]
) -> dict[str, Any]:
    """FITS WCS cards of the sub-grid described in :func:`affine_gwcs`.

    CRPIX moves to the new grid, CDELT (or CD) grows by ``scale`` and SIP
    coefficients, if any, are rescaled, so the cards describe exactly the same
    sky positions as the parent cards.

    Parameters
    ----------
    cards : mapping
        Parent FITS WCS cards (as in ``attrs["dask_resample"]["wcs_fits"]``).
    scale, offset_yx, shape_yx
        As in :func:`affine_gwcs`.

    Returns
    -------
    dict
    """
    out = dict(cards)
    oy, ox = (float(v) for v in offset_yx)
    for axis_n, off in ((1, ox), (2, oy)):
        key = f"CRPIX{axis_n}"
        if key in out:
            out[key] = (float(out[key]) - 1.0 - off) / scale + 1.0
    if scale != 1:
        if any(k.startswith("CD") and "_" in k for k in out):
            for k in list(out):
                if k.startswith("CD") and "_" in k and k[2:].replace("_", "").isdigit():
                    out[k] = float(out[k]) * scale
        else:
            for k in ("CDELT1", "CDELT2"):
                if k in out:
                    out[k] = float(out[k]) * scale
        for prefix in ("A", "B", "AP", "BP"):
            for k in list(out):
                head, _, tail = k.partition("_")
                if head == prefix and tail and tail.replace("_", "").isdigit() and tail.count("_") == 1:
                    i, j = (int(v) for v in tail.split("_"))
                    out[k] = float(out[k]) * scale ** (i + j - 1)
    ny, nx = (int(v) for v in shape_yx)
    out["NAXIS1"] = nx
    out["NAXIS2"] = ny
    return out


def subgrid_metadata(
    meta: Mapping[str, Any],
    *,
    scale: float,
    offset_yx: tuple[float, float],
    shape_yx: tuple[int, int],
    wcs: Any = None,
) -> dict[str, Any]:
    """Mosaic metadata of a sub-grid (cutout or pyramid level) of ``meta``.

    ``wcs_asdf``, ``wcs_fits`` and ``grid`` (shape, pixel scale) are replaced;
    ``subgrid`` records the placement in level-0 pixels of the original mosaic
    (``scale``, ``origin_yx``), composed with any earlier placement.

    Parameters
    ----------
    meta : mapping
        Parent metadata (``attrs["dask_resample"]``).
    scale, offset_yx, shape_yx
        As in :func:`affine_gwcs`.
    wcs : gwcs.WCS, optional
        The parent gwcs, if already deserialised.

    Returns
    -------
    dict
    """
    parent_wcs = wcs if wcs is not None else gwcs_from_text(meta["wcs_asdf"])
    new = copy.deepcopy(dict(meta))
    new["wcs_asdf"] = gwcs_to_text(affine_gwcs(parent_wcs, scale=scale, offset_yx=offset_yx, shape_yx=shape_yx))
    if "wcs_fits" in meta:
        new["wcs_fits"] = affine_fits_header(meta["wcs_fits"], scale=scale, offset_yx=offset_yx, shape_yx=shape_yx)
    grid = dict(meta.get("grid", {}))
    grid["shape_yx"] = [int(v) for v in shape_yx]
    for key in ("pixel_scale",):
        if grid.get(key) is not None:
            grid[key] = float(grid[key]) * scale
    for key in ("pixelarea_steradians", "pixelarea_arcsecsq"):
        if grid.get(key) is not None:
            grid[key] = float(grid[key]) * scale * scale
    new["grid"] = grid
    prev = meta.get("subgrid", {"scale": 1.0, "origin_yx": [0.0, 0.0]})
    pscale = float(prev["scale"])
    py, px = (float(v) for v in prev["origin_yx"])
    new["subgrid"] = {
        "scale": pscale * scale,
        "origin_yx": [py + pscale * float(offset_yx[0]), px + pscale * float(offset_yx[1])],
    }
    return new


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
    def meta(self) -> dict[str, Any]:
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
        return meta  # type: ignore[return-value]

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
            from astropy.io import fits
            from astropy.wcs import WCS

            cards = self.meta.get("wcs_fits")
            if not cards:
                raise ValueError("ds.mosaic.fits_wcs: no FITS cards ('wcs_fits') in the mosaic metadata")
            header = fits.Header()
            for key, value in cards.items():
                header[key] = value
            self._fits_wcs = WCS(header)
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
        ny, nx = self.shape_yx
        y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
        x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
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
        from astropy.nddata.utils import NoOverlapError, PartialOverlapError, overlap_slices

        if mode not in ("trim", "strict"):
            raise ValueError(f"mode: expected 'trim' or 'strict', got {mode!r}")
        ra, dec = _radec(position)
        yc, xc = self.pixel(ra, dec)
        shape = self._size_pixels(size)
        # round away the inversion's last bits so that a pixel centre gives a stable origin
        centre = (round(float(yc), 6), round(float(xc), 6))
        try:
            (sl_y, sl_x), _ = overlap_slices(self.shape_yx, shape, centre, mode=mode)
        except NoOverlapError:
            raise ValueError(f"position: ({ra:.6f}, {dec:.6f}) deg is outside the mosaic") from None
        except PartialOverlapError:
            raise ValueError(f"size: a {shape} cutout at ({ra:.6f}, {dec:.6f}) deg does not fit in the mosaic") from None
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
    def to_fits(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the Dataset as a FITS file with WCS.

        Extensions follow a jwst ``i2d`` product: ``SCI`` (data), ``WHT``,
        ``CON``, ``ERR``, ``VAR_RNOISE``, ``VAR_POISSON``, ``VAR_FLAT``, ``DQ``,
        whichever exist; each image extension carries the FITS WCS cards. The
        arrays are computed and appended one at a time, so memory holds one
        array, not the whole product.

        Parameters
        ----------
        path : path-like
            FITS file to write.
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        from astropy.io import fits

        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
        meta = self.meta
        names = [n for n in FITS_EXTENSIONS if n in self._ds]
        if not names:
            raise ValueError("ds.mosaic.to_fits: the Dataset holds none of the mosaic arrays")
        primary = fits.PrimaryHDU()
        hdr = primary.header
        hdr["ORIGIN"] = (str(meta.get("software", "dask-resample"))[:60], "software")
        hdr["RESMODE"] = (str(meta.get("mode", "many_to_one")), "resample mode")
        params = meta.get("params", {})
        for key, card in (("pixfrac", "PIXFRAC"), ("kernel", "KERNEL"), ("weight_type", "WHTTYPE")):
            if params.get(key) is not None:
                hdr[card] = params[key]
        if params.get("fillval") is not None:
            hdr["FILLVAL"] = str(params["fillval"])
        totals = meta.get("totals", {})
        if totals.get("exposure_time") is not None:
            hdr["XPOSURE"] = (float(totals["exposure_time"]), "[s] total exposure time")
        hdr["NINPUTS"] = (len([r for r in meta.get("inputs", []) if not r.get("skipped")]), "inputs drizzled")
        if "subgrid" in meta:
            hdr["SUBSCALE"] = (float(meta["subgrid"]["scale"]), "pixel size in mosaic pixels")
            hdr["SUBORIGY"] = (float(meta["subgrid"]["origin_yx"][0]), "origin y in mosaic pixels")
            hdr["SUBORIGX"] = (float(meta["subgrid"]["origin_yx"][1]), "origin x in mosaic pixels")
        tmp = path.with_name(path.name + ".partial")
        if tmp.exists():
            tmp.unlink()
        primary.writeto(tmp)
        wcs_cards = {k: v for k, v in meta.get("wcs_fits", {}).items() if k not in ("NAXIS1", "NAXIS2", "WCSAXES")}
        for name in names:
            data = np.asarray(self._ds[name].values)
            ext = fits.ImageHDU(data=data, name=FITS_EXTENSIONS[name])
            if data.ndim == 2:
                for key, value in wcs_cards.items():
                    ext.header[key] = value
            fits.append(tmp, ext.data, ext.header)
        os.replace(tmp, path)
        return path


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
