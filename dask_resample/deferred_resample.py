"""``stcal.resample.Resample`` with its drizzling deferred to one :func:`dask_resample.resample` graph.

The base of the jwst facade (:class:`dask_resample.jwst.ResampleImage`): ``add_model`` records an
exposure and does the reference's bookkeeping, ``finalize`` fills the output model from the
finished mosaic; the facade supplies the engine (``_run_engine``, ``_discard_store``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stcal.resample import Resample

from .inputs.drivers import in_memory
from .inputs.io import ExposureRef, load_wcs
from .store import Location, as_location, read_metadata

_CTX_PLANE_BITS = 32


def _ctx_planes(n_input_models: int | None) -> int:
    """Context planes drizzle allocates for ``n_input_models`` planned inputs."""
    if not n_input_models or n_input_models < 1:
        return 1
    return (int(n_input_models) - 1) // _CTX_PLANE_BITS + 1


def _plain_wcsinfo(wcsinfo: Any) -> dict[str, Any] | None:
    """A picklable copy of a model's ``meta.wcsinfo`` (node or mapping)."""
    if wcsinfo is None:
        return None
    instance = getattr(wcsinfo, "instance", wcsinfo)
    try:
        return dict(instance)
    except (TypeError, ValueError):
        return None


def _time_record(ref: ExposureRef) -> dict[str, Any]:
    """The fields ``stcal.resample.Resample`` reads to count exposure time."""
    return {
        "filename": ref.filename,
        "group_id": ref.group_id,
        "exposure_time": ref.exposure_time,
        "measurement_time": ref.measurement_time,
        "start_time": ref.start_time,
        "end_time": ref.end_time,
        "duration": ref.duration,
    }


class _DeferredResample(Resample):
    """``stcal.resample.Resample`` with the drizzling deferred to one graph.

    ``add_model`` only records the exposure and does the reference's bookkeeping
    (pixel scale ratio, pointings, exposure times); ``finalize`` drizzles all
    recorded exposures at once with :func:`dask_resample.resample` and fills the
    output model dictionary exactly where the reference fills it. No full-frame
    drizzle arrays are allocated before the results exist.
    """

    def reset_arrays(self, n_input_models: int | None = None) -> None:
        """Start a new output: forget recorded exposures, reset time counters.

        Parameters
        ----------
        n_input_models : int or None, optional
            Number of inputs expected; as in the reference, it sets the minimum
            number of context planes of the output.
        """
        if not hasattr(self, "_output_model") or self.is_finalized():
            self._output_model = self.create_output_model()
        self._pending: list[ExposureRef] = []
        self._ready_source: tuple[Location, str | None] | None = None
        self._min_ctx_planes = _ctx_planes(n_input_models)
        self.init_time_counters()
        self._finalized = False

    def add_model(self, model: dict[str, Any]) -> None:
        """Record one input (a ``stcal.resample`` model dictionary) for the next :meth:`finalize`.

        The dictionary's arrays are referenced, not copied, until :meth:`finalize`.

        Parameters
        ----------
        model : dict
            Data arrays and metadata, as made by ``input_model_to_dict``.
        """
        self._check_not_finalized()
        self.validate_input_model(model)
        data = model["data"]
        name = model.get("filename") or f"model_{len(self._pending)}"
        if np.ndim(data) != 2:
            raise RuntimeError(f"Input model '{name}' is not a 2D image.")
        payload = dict(model)
        payload["wcsinfo"] = _plain_wcsinfo(model.get("wcsinfo"))
        ref = in_memory.ref_from_model_dict(
            len(self._pending), payload, filename=str(name), group_id=str(model["group_id"])
        )
        self._register(ref, model)

    def _check_not_finalized(self) -> None:
        if self._finalized:
            raise RuntimeError(
                "Resampling has been finalized and no new models can be added "
                "to the resampled output model. Call 'reset_arrays' "
                "to initialize a new output model and associated arrays."
            )

    def _register(self, ref: ExposureRef, model: dict[str, Any]) -> None:
        """The reference's per-model bookkeeping, without drizzling."""
        self._check_not_finalized()
        self._n_res_models += 1
        if self._pixel_scale_ratio is None:
            if "wcs" not in model:
                wcs, shape_yx, info = load_wcs(ref)
                model = {
                    **model,
                    "wcs": wcs,
                    "data": np.broadcast_to(np.float32(0), shape_yx),
                    "pixelarea_steradians": info.get("pixelarea_steradians"),
                }
            self._compute_pixel_scale_ratio(model)
        if (group_id := model["group_id"]) not in self._group_ids:
            self.update_time(model)
            self._group_ids.append(group_id)
            self._output_model["pointings"] += 1
        self._pending.append(ref.with_index(len(self._pending)))

    def finalize(self) -> None:
        """Drizzle the recorded inputs (one graph) and set the output arrays and times."""
        if self._finalized:
            return
        if not self._pending:
            raise RuntimeError("No input models were added; nothing to resample.")
        source, self._ready_source = self._ready_source, None
        if source is None:
            source = (self._run_engine(self._pending, mode="many_to_one"), None)
            try:
                arrays = self._load_arrays(*source)
            finally:
                self._discard_store()
        else:
            arrays = self._load_arrays(*source)
        self._finalized = True
        self._output_model["pointings"] = len(self.group_ids)
        if "con" in arrays and arrays["con"].shape[0] < self._min_ctx_planes:
            con = arrays["con"]
            pad = np.zeros((self._min_ctx_planes - con.shape[0], *con.shape[1:]), dtype=con.dtype)
            arrays["con"] = np.concatenate([con, pad])
        for name, values in arrays.items():
            self._output_model[name] = values
        self._pending = []
        self.finalize_time_info()

    # -- hooks implemented by the facade --------------------------------------
    def _run_engine(self, refs: Sequence[ExposureRef], mode: str) -> Location:  # pragma: no cover - abstract
        raise NotImplementedError

    def _discard_store(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _load_arrays(path: Location, group: str | None) -> dict[str, np.ndarray]:
        """Read every output array of ``group`` (``None``: the root) into memory."""
        import zarr

        names = read_metadata(path)["arrays"]
        root = zarr.open_group(as_location(path).zarr_store(read_only=True), mode="r")
        node: Any = root[group] if group else root  # a group, whose members zarr types as Array | Group
        return {name: np.asarray(node[name][...]) for name in names}
