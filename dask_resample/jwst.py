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

from jwst.associations.asn_from_list import asn_from_list
from jwst.datamodels import ModelLibrary
from jwst.resample import resample as _reference

from . import config
from .api import resample
from .deferred_resample import _DeferredResample, _time_record
from .inputs.drivers.jwst_model import library_member_ref
from .inputs.io import ExposureRef
from .params import ResampleParams
from .store import Location, MosaicExistsError, as_location, is_mosaic

__all__ = ["ResampleImage"]

log = logging.getLogger(__name__)

#: Association id of the library returned by ``resample_many_to_many(in_memory=False)``
#: (the reference's value).
DEFAULT_MANY_TO_MANY_ASN_ID = "abcdefg"

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
        ResampleParams(**{name: reference_kwargs[name] for name in ResampleParams.names() if name in reference_kwargs})
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
                    f"{self._store}: exists and is not a dask-resample mosaic; refusing to touch it"
                )
        super().__init__(input_models, **reference_kwargs)

    @property
    def params(self) -> ResampleParams:
        """The drizzle parameters as the reference holds them now (see :data:`REFERENCE_ATTRIBUTES`)."""
        attributes = {name: REFERENCE_ATTRIBUTES.get(name, name) for name in ResampleParams.names()}
        return ResampleParams(**{name: getattr(self, attr) for name, attr in attributes.items() if hasattr(self, attr)})

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
