"""A drop-in replacement for :class:`jwst.resample.resample.ResampleImage`.

Code that uses the JWST pipeline's resampling class switches to the cluster and to
bounded memory by changing one import::

    from dask_resample.jwst import ResampleImage   # was: from jwst.resample.resample import ...

    library = ModelLibrary("jw01234-o001_image3_asn.json", on_disk=True)
    mosaic = ResampleImage(library, pixfrac=0.8).resample_many_to_one()
    per_group = ResampleImage(library).resample_many_to_many(in_memory=False)

:class:`ResampleImage` subclasses the reference class, so the output WCS, the
output model, header blending (``jwst.model_blender.ModelBlender``), the
metadata (``meta.resample``, photometry, exposure times, background, FITS
``wcsinfo``, ``S_REGION``, association names, ``cal_step``) and the file names
are produced by the reference's own code. Only the pixel work differs: instead
of drizzling each model into full-frame arrays as it is added, the facade
records the exposures and, at :meth:`~ResampleImage.finalize`, runs one
:func:`dask_resample.resample` graph on the output grid of the reference. For
many-to-many resampling, all exposure groups are branches of a single graph.

Models of an on-disk library (or not yet loaded by an in-memory one) are read
by the workers from their files; models held in memory are shipped to the
workers.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jwst.associations.asn_from_list import asn_from_list
from jwst.datamodels import ModelLibrary
from jwst.resample import resample as _reference
from stcal.resample import Resample

from . import config
from .api import resample
from .inputs.drivers import in_memory
from .inputs.drivers.jwst_model import library_member_ref
from .inputs.io import ExposureRef, load_wcs
from .params import ResampleParams
from .store import Location, MosaicExistsError, as_location, is_mosaic, read_metadata

__all__ = ["ResampleImage"]

log = logging.getLogger(__name__)

#: Association id of the library returned by ``resample_many_to_many(in_memory=False)``
#: (the reference's value).
DEFAULT_MANY_TO_MANY_ASN_ID = "abcdefg"

_CTX_PLANE_BITS = 32

#: The reference's constructor: names, order and defaults of the facade's parameters.
_REFERENCE_SIGNATURE = inspect.signature(_reference.ResampleImage.__init__)

#: Attribute in which the reference (``stcal.resample.Resample``) keeps a parameter
#: after ``__init__``, where it is not the parameter's own name.
REFERENCE_ATTRIBUTES: dict[str, str] = {
    "enable_ctx": "_enable_ctx",
    "enable_var": "_enable_var",
    "report_var": "_report_var",
    "compute_err": "_compute_err",
    "propagate_dq": "_propagate_dq",
}


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
        ref = in_memory.ref_from_model_dict(len(self._pending), payload, filename=str(name),
                                            group_id=str(model["group_id"]))
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


def _remove_at_exit(location: Location) -> None:
    """Remove a temporary store location when its facade goes; at interpreter exit its server may be gone."""
    try:
        location.remove()
    except Exception as exc:  # noqa: BLE001 - nothing to act on at exit; say what was left
        log.warning("%s: temporary store not removed: %s", location, f"{type(exc).__name__}: {exc}".splitlines()[0])


class ResampleImage(_reference.ResampleImage, _DeferredResample):
    """Resample imaging data on a Dask cluster, as ``jwst.resample.resample.ResampleImage``.

    Parameters
    ----------
    input_models : jwst.datamodels.ModelLibrary
        The models to resample.
    *args, **kwargs
        The parameters of :class:`jwst.resample.resample.ResampleImage`
        (``pixfrac``, ``kernel``, ..., ``pixmap_order``), by position or name,
        with its defaults: they are bound to the reference's own signature, and
        the drizzle parameters among them are checked by
        :class:`~dask_resample.params.ResampleParams`.
    asn_id : str, optional
        Keyword only. Accepted for compatibility with versions of the reference that take it:
        passed as ``asn_id`` to ``asn_from_list`` when
        ``resample_many_to_many(in_memory=False)`` builds its association, in
        place of the reference's fixed ``"abcdefg"``.
    client : distributed.Client, optional
        Client to run on; ``None`` uses the current client, else starts a
        LocalCluster for each run.
    tile_shape : (int, int), optional
        Output tile (Zarr chunk) shape (ny, nx); default that of
        :func:`dask_resample.resample`.
    store : str or Path, optional
        Zarr path or URL (``s3://...``) the mosaics are written to (replaced by
        each run and kept). Default: a temporary location, removed once the
        arrays are loaded: under ``resample.scratch-dir`` when it is a URL
        (what a cluster whose workers share no disk needs), else a local
        temporary directory (under dask's ``temporary-directory`` when set).
    storage_options : mapping, optional
        Options of the store's file system (credentials, ``endpoint_url``).
    scheduler : {"distributed", "serial"}, optional
        ``"serial"`` runs the same tasks in this process, without Dask.

    Notes
    -----
    ``add_model`` records models; the drizzling of all of them happens in one
    graph when :meth:`finalize` is called. Arrays of models passed to
    ``add_model`` are referenced (not copied) until then.
    """

    def __init__(
        self,
        input_models: Any,
        *args: Any,
        asn_id: str | None = None,
        client: Any = None,
        tile_shape: Sequence[int] | None = None,
        store: str | Path | None = None,
        storage_options: Mapping[str, Any] | None = None,
        scheduler: str = "distributed",
        **kwargs: Any,
    ) -> None:
        # the reference's own signature decides names, order and defaults
        try:
            bound = _REFERENCE_SIGNATURE.bind(self, input_models, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"ResampleImage: {exc}") from None
        bound.apply_defaults()
        reference_kwargs = {k: v for k, v in bound.arguments.items() if k not in ("self", "input_models")}
        # bad parameters fail here, with one line naming them, before any model is read
        # (parameters jwst lacks, such as Roman's include_var_flat, keep their defaults)
        ResampleParams(**{name: reference_kwargs[name] for name in ResampleParams.names()
                          if name in reference_kwargs})
        if scheduler not in ("distributed", "serial"):
            raise ValueError(f"scheduler: expected 'distributed' or 'serial', got {scheduler!r}")
        if tile_shape is not None:
            tile_shape = tuple(int(v) for v in tile_shape)
            if len(tile_shape) != 2 or min(tile_shape) < 1:
                raise ValueError(f"tile_shape: expected two positive integers (ny, nx), got {tile_shape}")
        self.asn_id = asn_id
        self._client = client
        self._tile_shape = tile_shape
        self._scheduler = scheduler
        self._group_results: dict[tuple[int, ...], tuple[Location, str]] = {}
        self._ref_cache: dict[int, ExposureRef] = {}
        if store is None:
            self._store = self._temporary_store(storage_options)
            self._store_is_temporary = True
        else:
            self._store = as_location(store, storage_options)
            self._store_is_temporary = False
            if self._store.exists() and not is_mosaic(self._store):
                raise MosaicExistsError(
                    f"{self._store}: exists and is not a dask-resample mosaic; refusing to touch it")
        super().__init__(input_models, **reference_kwargs)

    @property
    def params(self) -> ResampleParams:
        """The drizzle parameters as the reference holds them now (see :data:`REFERENCE_ATTRIBUTES`)."""
        attributes = {name: REFERENCE_ATTRIBUTES.get(name, name) for name in ResampleParams.names()}
        return ResampleParams(**{name: getattr(self, attr) for name, attr in attributes.items()
                                 if hasattr(self, attr)})

    def _temporary_store(self, storage_options: Mapping[str, Any] | None) -> Location:
        """A fresh temporary store location, removed when this object goes (see ``store``)."""
        import dask

        configured = config.get("scratch-dir")
        if configured and not (scratch := as_location(str(configured), storage_options)).is_local:
            root = scratch.join(f"resample-image-{uuid.uuid4().hex[:12]}")
            self._cleanup: weakref.finalize[..., Any] = weakref.finalize(self, _remove_at_exit, root)
        else:
            tmpdir = tempfile.mkdtemp(prefix="dask-resample-", dir=dask.config.get("temporary-directory", None))
            self._cleanup = weakref.finalize(self, shutil.rmtree, tmpdir, True)
            root = as_location(tmpdir)
        return root.join("mosaic.zarr")

    @property
    def store(self) -> Path | str:
        """Zarr path (a :class:`~pathlib.Path`) or URL the mosaics are written to."""
        return Path(self._store.url) if self._store.is_local else self._store.url

    # -- running the engine ---------------------------------------------------
    def _run_engine(self, refs: Sequence[ExposureRef], mode: str) -> Location:
        """Drizzle ``refs`` on the reference's output grid into :attr:`store`; return its path."""
        output_wcs = {
            "wcs": self.output_wcs,
            "pixel_scale": self.output_pixel_scale,
            "pixel_scale_ratio": self.pixel_scale_ratio,
        }
        resample(
            list(refs),
            self._store,
            mode=mode,
            params=self.params,
            output_wcs=output_wcs,
            tile_shape=self._tile_shape,
            client=self._client,
            overwrite=True,
            scheduler=self._scheduler,
        )
        return self._store

    def _discard_store(self) -> None:
        if self._store_is_temporary:
            self._store.remove()

    # -- library members --------------------------------------------------------
    def _member_refs(self, indices: Iterable[int]) -> list[ExposureRef]:
        """Exposure references of library members (the library must be closed)."""
        group_of = {i: g for g, members in self.input_models.group_indices.items() for i in members}
        refs = []
        for i in indices:
            ref = self._ref_cache.get(i)
            if ref is None:
                ref = library_member_ref(self.input_models, i, group_id=group_of[i])
            refs.append(ref)
        return refs

    def _add_members(self, indices: Sequence[int], *, group: bool) -> str:
        """Record library members as ``add_model`` does, borrowing models only for metadata.

        A model is borrowed when its metadata is needed: the first one (output
        model template, and for a group its file name and ``bunit_data``) and,
        with ``blendheaders``, every one. Returns the group's output file name
        (``""`` when ``group`` is false).
        """
        refs = self._member_refs(indices)
        output_model_filename = ""
        library = self.input_models
        with library:
            for k, (index, ref) in enumerate(zip(indices, refs, strict=True)):
                first = k == 0
                need_model = self.output_jwst_model is None or self.blendheaders or (group and first)
                model = library.borrow(index) if need_model else None
                try:
                    if group and self.output_jwst_model is None:
                        assert model is not None  # borrowed: need_model
                        filename = model.meta.filename
                        output_type = filename[filename.rfind(".") :]
                        output_root = "_".join(filename.replace(output_type, "").split("_")[:-1])
                        output_model_filename = f"{output_root}_{self.intermediate_suffix}{output_type}"
                    self._register(ref, _time_record(ref))
                    if self.output_jwst_model is None:
                        self.output_jwst_model: Any = self.create_output_jwst_model(ref_input_model=model)
                    if self.blendheaders:
                        self._blender.accumulate(model)
                    if group and first:
                        assert model is not None  # borrowed: need_model
                        self.output_jwst_model.meta.bunit_data = model.meta.bunit_data
                finally:
                    if model is not None:
                        library.shelve(model, index, modify=False)
        return output_model_filename

    # -- the reference's entry points ---------------------------------------------
    def resample_group(self, indices: Sequence[int]) -> Any:
        """Resample the input models at ``indices`` (one exposure group) together.

        As the reference: a previous output is cleared first, and ``finalize`` is
        called at the end.

        Parameters
        ----------
        indices : list of int
            Indices in ``input_models`` of models sharing a ``group_id``.

        Returns
        -------
        stdatamodels.jwst.datamodels.ImageModel
            The resampled model, named ``{root}_outlier_i2d{ext}`` after its first input.
        """
        indices = [int(i) for i in indices]
        if self.output_jwst_model is not None:
            self.reset_arrays(n_input_models=len(indices))
        log.info(f"{len(indices)} exposures to drizzle together")
        output_model_filename = self._add_members(indices, group=True)
        if (done := self._group_results.get(tuple(indices))) is not None:
            self._ready_source = done
        self.finalize()
        _reference.copy_asn_info_from_library(self.input_models, self.output_jwst_model)
        self.output_jwst_model.meta.filename = output_model_filename
        return self.output_jwst_model

    def resample_many_to_many(self, in_memory: bool = True) -> ModelLibrary:
        """Resample each exposure group to its own output on the common grid.

        All groups are drizzled by one graph (one branch per group); the outputs
        are then built group by group as the reference builds them.

        Parameters
        ----------
        in_memory : bool, optional
            Return the models in memory, else save them (to ``output`` when it is
            a directory) and return an on-disk library of the files.

        Returns
        -------
        jwst.datamodels.ModelLibrary
            One resampled model per group, in ``group_indices`` order.
        """
        library = self.input_models
        group_indices = library.group_indices
        refs = self._member_refs(range(len(library)))
        path = self._run_engine(refs, mode="many_to_many")
        self._ref_cache = dict(enumerate(refs))
        self._group_results = {tuple(indices): (path, gid) for gid, indices in group_indices.items()}
        output_models = []
        try:
            for indices in group_indices.values():
                output_model = self.resample_group(indices)
                if not in_memory:
                    output_name = output_model.meta.filename
                    if self.output_dir is not None:
                        output_name = str(Path(self.output_dir) / output_name)
                    output_model.save(output_name)
                    log.info(f"Saved model in {output_name}")
                    output_models.append(output_name)
                else:
                    output_models.append(output_model)
        finally:
            self._ref_cache = {}
            self._group_results = {}
            self._discard_store()
        if in_memory:
            return ModelLibrary(output_models, on_disk=False)
        asn = asn_from_list(
            output_models, product_name="outlier_i2d", asn_id=self.asn_id or DEFAULT_MANY_TO_MANY_ASN_ID
        )
        asn_dict = json.loads(asn.dump()[1])
        return ModelLibrary(asn_dict, on_disk=True)

    def resample_many_to_one(self) -> Any:
        """Resample and co-add all inputs to one output.

        Returns
        -------
        stdatamodels.jwst.datamodels.ImageModel
            The resampled and co-added image.
        """
        log.info("Resampling science and variance data")
        self._add_members(list(range(len(self.input_models))), group=False)
        self.finalize()
        self.output_jwst_model.meta.filename = self.output_filename
        _reference.copy_asn_info_from_library(self.input_models, self.output_jwst_model)
        return self.output_jwst_model
