"""The small records every layer shares: exposures, their references and input errors.

Kept apart from :mod:`dask_resample.inputs.io` (which resolves inputs and calls the
drivers) so that the drivers and :mod:`dask_resample.inputs.failures` can use them
without importing each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..store.location import Location

__all__ = [
    "Exposure",
    "ExposureRef",
    "InputError",
    "InputSource",
    "group_id_from_observation",
    "number",
    "one_line",
]


class InputError(ValueError):
    """An input file or parameter is unusable; the message names it."""


@dataclass(frozen=True)
class Exposure:
    """An exposure held in memory.

    Parameters
    ----------
    data : numpy.ndarray
        Science array (2-D).
    wcs : gwcs.wcs.WCS or astropy.wcs.WCS
        Celestial WCS of ``data``.
    dq, var_rnoise, var_poisson, var_flat, err : numpy.ndarray, optional
        Data quality and variance/error arrays, same shape as ``data``.
    exposure_time : float
        Exposure time in seconds.
    measurement_time : float, optional
        Measurement time (used for ``weight_type="exptime"`` when given).
    group_id, filename : str, optional
        Group id (defaults to one group per exposure) and a name for messages.
    level : float, optional
        Sky level, subtracted unless ``subtracted`` is true.
    """

    data: np.ndarray
    wcs: Any
    dq: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None
    var_poisson: np.ndarray | None = None
    var_flat: np.ndarray | None = None
    err: np.ndarray | None = None
    exposure_time: float = 1.0
    measurement_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    group_id: str | None = None
    filename: str | None = None
    level: float | None = None
    subtracted: bool = True
    pixelarea_steradians: float | None = None


@dataclass(frozen=True)
class ExposureRef:
    """A small, picklable reference to one input exposure.

    Attributes
    ----------
    index : int
        Position in input order; input ``k`` sets context bit ``k % 32`` of plane ``k // 32``.
    source : str
        Absolute path or URL (``s3://...``, ``memory://...``) of the file, or ``"<memory>"``.
    kind : str
        ``"jwst"``, ``"roman"``, ``"fits"`` or ``"memory"``.
    filename : str
        Name used in messages and the input table.
    group_id : str
        Exposure group id.
    pixelarea_steradians : float or None
        Mean input pixel area.
    outline : tuple of (float, float)
        (RA, Dec) in degrees of points along the edge of the valid region (the
        ``S_REGION`` vertices, or edge samples through the WCS): where the
        exposure lands, used to plan the tiles it feeds.
    hdu : str or int, optional
        For plain FITS: the HDU holding the science image.
    payload : Any
        For in-memory exposures only: the model dictionary.
    outlier_mask : str or Location, optional
        Path of an outlier mask (:mod:`dask_resample.inputs.dqmask`) applied to the
        exposure's arrays when it is read for drizzling, as if it had been
        read from its ``*_crf.fits`` file.
    storage_options : mapping
        Options of the file system of a URL ``source`` (credentials,
        ``endpoint_url``), used wherever the file is opened; empty for local
        files. Never part of :meth:`to_record`, ``repr`` or comparisons.
    """

    index: int
    source: str
    kind: str
    filename: str
    group_id: str
    exposure_time: float | None = None
    measurement_time: float | None = None
    start_time: float | None = None
    end_time: float | None = None
    duration: float | None = None
    s_region: str | None = None
    payload: Any = field(default=None, compare=False, repr=False)
    pixelarea_steradians: float | None = None
    outline: tuple[tuple[float, float], ...] = field(default=(), compare=False, repr=False)
    hdu: str | int | None = None
    outlier_mask: str | Location | None = field(default=None, compare=False, repr=False)
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def location(self) -> Location:
        """Where the file is: a :class:`~dask_resample.store.location.Location` with its storage options."""
        return _location(self.source, self.storage_options)

    def with_index(self, index: int) -> ExposureRef:
        """Return a copy renumbered to ``index``."""
        return dataclasses.replace(self, index=index)

    def to_record(self) -> dict[str, Any]:
        """Return the JSON row stored in the mosaic's input table."""
        return {
            "index": self.index,
            "filename": self.filename,
            "source": self.source,
            "group_id": self.group_id,
            "exposure_time": self.exposure_time,
            "measurement_time": self.measurement_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
        }


@dataclass(frozen=True)
class InputSource:
    """A file to read, known after the client's cheap checks (before its metadata is read).

    Attributes
    ----------
    index : int
        Position in input order.
    path : str
        Absolute path or URL (``s3://...``, ``memory://...``) of the file.
    kind : str
        Input driver (``"jwst"``, ``"roman"`` or ``"fits"``).
    filename : str
        Name used in messages and the input table.
    group_id : str or None
        Group id when known before reading (association member, ``ModelLibrary``).
    storage_options : mapping
        Options of the file system of a URL ``path`` (see :class:`ExposureRef`);
        empty for local files.
    """

    index: int
    path: str
    kind: str
    filename: str
    group_id: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def location(self) -> Location:
        """Where the file is: a :class:`~dask_resample.store.location.Location` with its storage options."""
        return _location(self.path, self.storage_options)


def _location(url: str, storage_options: Mapping[str, Any]) -> Location:
    from ..store.location import Location  # a leaf module (standard library only)

    return Location(url, storage_options)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if empty).

    A :class:`KeyError` carrying a message gives the message itself, not its quoted ``repr``.
    """
    raw = exc.args[0] if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) else str(exc)
    text = [ln.strip() for ln in raw.strip().splitlines() if ln.strip()]
    return text[0] if text else type(exc).__name__


def number(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is missing or not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_OBSERVATION_KEYS = (
    "program_number",
    "observation_number",
    "visit_number",
    "visit_group",
    "sequence_id",
    "activity_id",
    "exposure_number",
)


def group_id_from_observation(obs: Mapping[str, Any]) -> str | None:
    """The group id jwst builds from ``meta.observation`` (``attrs_to_group_id``), or ``None``.

    Returns ``None`` when a field is missing, where jwst falls back to one group per exposure.
    """
    if any(obs.get(k) is None for k in _OBSERVATION_KEYS):
        return None
    o = {k: obs[k] for k in _OBSERVATION_KEYS}
    return (
        f"jw{o['program_number']}{o['observation_number']}{o['visit_number']}"
        f"_{o['visit_group']}{o['sequence_id']}{o['activity_id']}_{o['exposure_number']}"
    )
