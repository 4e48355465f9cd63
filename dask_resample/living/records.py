"""The records of a living mosaic: its fixed grid, what an update did, its inputs and their descriptions.

Each input of a living mosaic is kept in the mosaic's metadata with what
planning needs of it (:class:`InputRecord`): its name, its content fingerprint,
the file's size and modification stamp when it was described (its
*signature*), and the description itself (the :class:`~dask_resample.inputs.io.ExposureRef`
fields read from the file: outline, times, pixel area, group id, ...). An
update plans from these descriptions without reading the inputs again; an
input whose signature changed has its content fingerprint computed again, and
only an input whose fingerprint is still the recorded one keeps its description
(:func:`dask_resample.living.inputs.check_inputs`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..geometry import OutputGrid, gwcs_from_text
from ..inputs.io import ExposureRef
from ..params import ResampleParams
from ..store import FORMAT_KEY, Location, as_location
from ..store.living import Version

__all__ = [
    "DESCRIPTION_FIELDS",
    "LIVING_KEY",
    "GridSpec",
    "InputRecord",
    "LivingState",
    "LivingUpdate",
    "content_fingerprint",
    "file_signature",
    "params_of",
]

#: Attribute (under the mosaic's ``dask_resample`` metadata) holding the living state.
LIVING_KEY = "living"

#: The :class:`~dask_resample.inputs.io.ExposureRef` fields an input's description keeps
#: (besides its source and file name): what planning and drizzling read of it.
DESCRIPTION_FIELDS: tuple[str, ...] = (
    "kind",
    "group_id",
    "exposure_time",
    "measurement_time",
    "start_time",
    "end_time",
    "duration",
    "s_region",
    "pixelarea_steradians",
    "outline",
    "hdu",
)


@dataclass(frozen=True)
class GridSpec:
    """A fixed sky grid: tangent-plane projection centre, pixel scale, rotation and extent.

    Attributes
    ----------
    crval : (float, float)
        Right ascension and declination of the projection centre (degrees).
    pixel_scale : float
        Output pixel scale (arcsec).
    shape_yx : (int, int)
        Extent in pixels (ny, nx); it may be much larger than the data:
        only tiles where data land are stored.
    rotation : float
        Angle of the grid's y axis east of north (degrees), as ``wcs_pars["rotation"]``.
    crpix : (float, float), optional
        Pixel (x, y) of ``crval``; default the grid's centre.
    """

    crval: tuple[float, float]
    pixel_scale: float
    shape_yx: tuple[int, int]
    rotation: float = 0.0
    crpix: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.shape_yx) != 2 or min(int(v) for v in self.shape_yx) < 1:
            raise ValueError(f"grid.shape_yx: expected two positive integers (ny, nx), got {self.shape_yx}")
        if not float(self.pixel_scale) > 0:
            raise ValueError(f"grid.pixel_scale: expected a positive number of arcsec, got {self.pixel_scale}")

    def wcs_pars(self) -> dict[str, Any]:
        """The grid as ``wcs_pars`` of :func:`dask_resample.resample`."""
        ny, nx = (int(v) for v in self.shape_yx)
        crpix = self.crpix if self.crpix is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
        return {
            "crval": [float(v) for v in self.crval],
            "pixel_scale": float(self.pixel_scale),
            "rotation": float(self.rotation),
            "output_shape": [ny, nx],
            "crpix": [float(v) for v in crpix],
        }


@dataclass(frozen=True)
class LivingUpdate:
    """What one update did.

    Attributes
    ----------
    version : Version
        The version it committed.
    n_recomputed, n_relabelled, n_cleared : int
        Tiles reduced again, tiles whose context bits only were rewritten, tiles emptied.
    n_drizzled : int
        Exposures drizzled (the added ones and the earlier ones that reach a recomputed tile
        that is not extended).
    attempts : int
        1, or more when other updates were committed first (then it was planned again).
    seconds : float
    n_described : int
        Inputs whose metadata was read from their files (the added ones, and earlier
        ones whose content changed or that the mosaic holds no description of); the
        others were planned from the descriptions the mosaic keeps.
    n_extended : int
        Recomputed tiles whose kept sums were extended by the added inputs alone
        (:mod:`~dask_resample.living.sums`).
    """

    version: Version
    n_recomputed: int
    n_relabelled: int
    n_cleared: int
    n_drizzled: int
    attempts: int
    seconds: float
    n_described: int = 0
    n_extended: int = 0


@dataclass(frozen=True)
class InputRecord:
    """One input of a living mosaic: where it is, its name, its content and its description.

    Attributes
    ----------
    source : str
        Path or URL of the file.
    filename : str
    fingerprint : str
        SHA-256 of the file's bytes (:func:`content_fingerprint`).
    signature : str
        The file's size and modification stamp when it was fingerprinted
        (:func:`file_signature`); empty when unknown.
    description : mapping, optional
        The :data:`DESCRIPTION_FIELDS` of its :class:`~dask_resample.inputs.io.ExposureRef`
        (``None``: not kept, e.g. by a version written before descriptions were kept).
    """

    source: str
    filename: str
    fingerprint: str
    signature: str = ""
    description: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def record(self) -> dict[str, str]:
        """Its name, source and fingerprint (a version's ``added`` and ``removed`` entries)."""
        return {"filename": self.filename, "source": self.source, "fingerprint": self.fingerprint}

    def state_record(self) -> dict[str, Any]:
        """Everything it holds (the mosaic's metadata)."""
        out: dict[str, Any] = {**self.record(), "signature": self.signature}
        if self.description is not None:
            out["description"] = dict(self.description)
        return out

    @classmethod
    def from_state(cls, doc: Mapping[str, Any]) -> InputRecord:
        """The record of :meth:`state_record` (or of a version without signatures or descriptions)."""
        description = doc.get("description")
        return cls(
            source=str(doc["source"]),
            filename=str(doc["filename"]),
            fingerprint=str(doc["fingerprint"]),
            signature=str(doc.get("signature") or ""),
            description=dict(description) if description is not None else None,
        )

    @classmethod
    def from_ref(cls, ref: ExposureRef, fingerprint: str, signature: str) -> InputRecord:
        """The record of a described input."""
        description: dict[str, Any] = {}
        for name in DESCRIPTION_FIELDS:
            value = getattr(ref, name)
            if name == "outline":
                value = [[float(ra), float(dec)] for ra, dec in value]
            description[name] = value
        return cls(
            source=ref.source,
            filename=ref.filename,
            fingerprint=fingerprint,
            signature=signature,
            description=description,
        )

    def exposure_ref(self, index: int, storage_options: Mapping[str, Any] | None) -> ExposureRef:
        """The :class:`~dask_resample.inputs.io.ExposureRef` its description holds, as input ``index``."""
        if self.description is None:
            raise ValueError(f"{self.filename}: the living mosaic keeps no description of it")
        d: dict[str, Any] = dict(self.description)
        outline = tuple((float(ra), float(dec)) for ra, dec in d.pop("outline", ()) or ())
        fields: dict[str, Any] = {n: d.get(n) for n in DESCRIPTION_FIELDS if n != "outline"}
        return ExposureRef(
            index=index,
            source=self.source,
            filename=self.filename,
            outline=outline,
            storage_options=dict(as_location(self.source, storage_options).storage_options),
            **fields,
        )


def content_fingerprint(ref: ExposureRef | Location) -> str:
    """SHA-256 of an input file's bytes (a worker task for inputs on object stores)."""
    location = ref if isinstance(ref, Location) else ref.location
    h = hashlib.sha256()
    with location.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_signature(location: Location) -> str:
    """A file's size and modification stamp (``size:mtime_ns`` on a disk, size and ETag on an object store).

    Cheap (one ``stat`` or ``HEAD``): an unchanged signature says the file was
    not rewritten since it was fingerprinted; a changed one sends the file to
    :func:`content_fingerprint` again.
    """
    if location.is_local:
        st = os.stat(location.url)
        return f"{st.st_size}:{st.st_mtime_ns}"
    info = location.fs.info(location.path)
    stamp = next(
        (
            info[k]
            for k in ("ETag", "etag", "LastModified", "mtime", "last_modified", "created")
            if info.get(k) is not None
        ),
        "",
    )
    return f"{info.get('size')}:{stamp}"


def params_of(stored: Mapping[str, Any]) -> ResampleParams:
    """The parameters stored in a mosaic's metadata, as a record."""
    return ResampleParams.from_kwargs(**{n: stored[n] for n in ResampleParams.names() if n in stored})


@dataclass(frozen=True)
class LivingState:
    """A living mosaic's inputs, grid and parameters at one version."""

    inputs: tuple[InputRecord, ...]
    params: ResampleParams
    grid: OutputGrid
    tile_shape: tuple[int, int]
    number: int
    n_planes: int

    @classmethod
    def read(cls, root: Any) -> LivingState:
        """The state held by the root group of a living mosaic's Zarr layout."""
        meta = dict(root.attrs[FORMAT_KEY])
        living = meta[LIVING_KEY]
        g = meta["grid"]
        wcs = gwcs_from_text(meta["wcs_asdf"])
        wcs.array_shape = tuple(g["shape_yx"])
        grid = OutputGrid(wcs, tuple(g["shape_yx"]), float(g["pixel_scale"]), float(g["pixel_scale_ratio"]))
        n_planes = root["con"].shape[0] if "con" in root else 1
        return cls(
            inputs=tuple(InputRecord.from_state(d) for d in living["inputs"]),
            params=params_of(meta["params"]),
            grid=grid,
            tile_shape=tuple(g["tile_shape_yx"]),
            number=int(living["version"]),
            n_planes=n_planes,
        )
