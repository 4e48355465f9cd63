"""Inputs at URLs: read by range from the store, never through a local path, identical to local files.

Most tests use fsspec's ``memory://`` file system (private to this process, so the
runs are serial); one runs a real cluster on an S3 server (SeaweedFS, ``s3_bucket``).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import uuid
import warnings
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from astropy.io import fits
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

import dask_resample
from dask_resample.geometry import gwcs_to_text
from dask_resample.inputs.drivers import driver_for
from dask_resample.inputs.io import (
    InputError,
    InputSource,
    collect_exposures,
    describe_resolved,
    load_model_dict,
    load_wcs,
    resolve_inputs,
)
from dask_resample.living.records import DESCRIPTION_FIELDS
from dask_resample.store import StorageError, input_fingerprint
from dask_resample.testing import synthetic

#: Arrays a mosaic from URLs must reproduce bit for bit.
SAME_AS_LOCAL = "every array of the mosaic from URLs equals the one from local files"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def upload(paths: list[Path], prefix: str) -> list[str]:
    """Copy local files to ``memory://<prefix>/<name>``; return their URLs."""
    mem = fsspec.filesystem("memory")
    urls = []
    for p in paths:
        mem.put_file(str(p), f"/{prefix}/{p.name}")
        urls.append(f"memory://{prefix}/{p.name}")
    return urls


@pytest.fixture
def bucket() -> str:
    """A fresh ``memory://`` prefix, removed afterwards."""
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    yield name
    mem = fsspec.filesystem("memory")
    if mem.exists(f"/{name}"):
        mem.rm(f"/{name}", recursive=True)


def assert_same_mosaic(a: Any, b: Any) -> None:
    assert set(a.data_vars) == set(b.data_vars), SAME_AS_LOCAL
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{name}: {SAME_AS_LOCAL}")


def assert_same_refs(url_refs: list, local_refs: list) -> None:
    """References agree in everything but where the file is."""
    assert len(url_refs) == len(local_refs)
    for u, loc in zip(url_refs, local_refs, strict=True):
        assert u.source.startswith("memory://") and u.filename == Path(loc.source).name
        for field in ("index", "filename", *DESCRIPTION_FIELDS):  # every field planning and drizzling read
            assert getattr(u, field) == getattr(loc, field), field


def one_line_error(exc_info: pytest.ExceptionInfo, *names: str) -> str:
    text = str(exc_info.value)
    assert "\n" not in text, text
    for name in names:
        assert name in text, text
    return text


@pytest.fixture(scope="module")
def jwst_data(tmp_path_factory) -> synthetic.SyntheticDataset:
    """2 dithers x 2 detectors of JWST ``*_cal.fits`` files and their association."""
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("url_jwst"), n_dithers=2, n_detectors=2, shape=(72, 80), seed=11, sky_level=0.25
    )


@pytest.fixture(scope="module")
def fits_data(tmp_path_factory) -> synthetic.SyntheticDataset:
    """3 plain FITS files (SCI/ERR/DQ/VAR_* layout, TAN-SIP WCS)."""
    return synthetic.write_dataset(
        tmp_path_factory.mktemp("url_fits"), n_dithers=3, n_detectors=1, shape=(72, 80), seed=21, fmt="fits"
    )


def single_image_file(src: Path, target: Path) -> Path:
    """The science image of a SCI-layout file as the primary HDU (headers merged)."""
    with fits.open(src) as hdul:
        header = hdul["SCI"].header.copy()
        for card in hdul[0].header.cards:
            if card.keyword not in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND", "") and card.keyword not in header:
                header[card.keyword] = card.value
        data = hdul["SCI"].data.copy()
    for key in ("EXTNAME", "XTENSION", "PCOUNT", "GCOUNT", "S_REGION"):
        header.remove(key, ignore_missing=True)
    fits.PrimaryHDU(data, header).writeto(target)
    return target


# ----------------------------------------------------------------------------
# mosaics from URLs equal those from local files
# ----------------------------------------------------------------------------
def test_jwst_urls_and_association_url_give_the_local_mosaic(jwst_data, bucket, tmp_path):
    urls = upload([*jwst_data.paths, jwst_data.asn_path], bucket)
    asn_url = urls[-1]
    local = dask_resample.resample(
        str(jwst_data.asn_path), str(tmp_path / "local.zarr"), scheduler="serial", tile_shape=(48, 64)
    )
    from_list = dask_resample.resample(urls[:-1], str(tmp_path / "list.zarr"), scheduler="serial", tile_shape=(48, 64))
    from_asn = dask_resample.resample(asn_url, str(tmp_path / "asn.zarr"), scheduler="serial", tile_shape=(48, 64))
    assert np.isfinite(local["data"].values).mean() > 0.5
    assert_same_mosaic(from_list, local)
    assert_same_mosaic(from_asn, local)
    assert_same_refs(collect_exposures(asn_url), collect_exposures(str(jwst_data.asn_path)))


def test_plain_fits_urls_give_the_local_mosaic(fits_data, bucket, tmp_path):
    single = single_image_file(fits_data.paths[0], tmp_path / "single.fits")
    paths = [single, *fits_data.paths[1:]]
    urls = upload(paths, bucket)
    kw = {"scheduler": "serial", "tile_shape": (40, 48), "weight_type": "exptime", "good_bits": None}
    local = dask_resample.resample([str(p) for p in paths], str(tmp_path / "local.zarr"), **kw)
    remote = dask_resample.resample(urls, str(tmp_path / "remote.zarr"), **kw)
    assert np.isfinite(local["data"].values).mean() > 0.5
    assert_same_mosaic(remote, local)
    url_refs = collect_exposures(urls)
    assert [r.hdu for r in url_refs] == [0, "SCI", "SCI"]
    assert_same_refs(url_refs, collect_exposures([str(p) for p in paths]))


def test_file_urls_are_local_paths(fits_data):
    refs = collect_exposures([f"file://{p}" for p in fits_data.paths])
    assert [r.source for r in refs] == [str(p) for p in fits_data.paths]
    assert all(not r.storage_options for r in refs)


# ----------------------------------------------------------------------------
# what the workers read: the same arrays, WCS and metadata as from a local file
# ----------------------------------------------------------------------------
def test_jwst_reads_from_a_url_equal_local_reads(jwst_data, bucket):
    from stdatamodels.jwst.datamodels.util import read_metadata

    from dask_resample.inputs.drivers import jwst_model
    from dask_resample.inputs.drivers._fitsfile import open_fits

    url = upload([jwst_data.paths[0]], bucket)[0]
    (u,) = collect_exposures([url])
    (loc,) = collect_exposures([str(jwst_data.paths[0])])
    wu, shape_u, info_u = load_wcs(u)
    wl, shape_l, info_l = load_wcs(loc)
    assert gwcs_to_text(wu) == gwcs_to_text(wl)
    assert shape_u == shape_l and info_u == info_l
    for need in (False, True):
        du = load_model_dict(u, need_var=need, need_err=need)
        dl = load_model_dict(loc, need_var=need, need_err=need)
        assert set(du) == set(dl)
        for key, value in dl.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == du[key].dtype, key
                np.testing.assert_array_equal(du[key], value, err_msg=key)
            elif key == "wcs":
                assert gwcs_to_text(du[key]) == gwcs_to_text(value)
            else:
                assert du[key] == value, key
    with open_fits(u.location) as hdul:
        meta = jwst_model._hdulist_metadata(hdul, u.location)
    assert meta == read_metadata(str(jwst_data.paths[0]), flatten=False)["meta"]


def test_plain_fits_reads_from_a_url_equal_local_reads(fits_data, bucket):
    url = upload([fits_data.paths[0]], bucket)[0]
    (u,) = collect_exposures([url])
    (loc,) = collect_exposures([str(fits_data.paths[0])])
    for need in (False, True):
        du = load_model_dict(u, need_var=need, need_err=need)
        dl = load_model_dict(loc, need_var=need, need_err=need)
        assert set(du) == set(dl)
        assert (du["err"] is None) == (not need) and (du["var_flat"] is None) == (not need)
        assert du["var_rnoise"] is not None
        for key, value in dl.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(du[key], value, err_msg=key)
            elif key == "wcs":
                assert value.fits_wcs.to_header_string(relax=True) == du[key].fits_wcs.to_header_string(relax=True)
            elif key != "filename":
                assert du[key] == value, key


class RangeCountingFileSystem(AbstractFileSystem):
    """Local files behind ``counting://``, read by range as an object store is, counting the bytes fetched."""

    protocol = "counting"
    fetched: list[tuple[str, int, int]] = []

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return {"name": path, "size": os.path.getsize(path), "type": "file"}

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        size = self.info(path)["size"]
        start, end = start or 0, size if end is None else min(end, size)
        return self._fetch(path, start, end)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        return _CountingFile(
            self,
            path,
            mode,
            block_size=block_size or 2**22,
            cache_options=cache_options,
            size=os.path.getsize(path),
            **kwargs,
        )

    def _fetch(self, path: str, start: int, end: int) -> bytes:
        RangeCountingFileSystem.fetched.append((path, start, end))
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)

    @classmethod
    def total(cls) -> int:
        return sum(end - start for _, start, end in cls.fetched)


class _CountingFile(AbstractBufferedFile):
    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs._fetch(self.path, start, end)


@pytest.fixture
def counting() -> type[RangeCountingFileSystem]:
    fsspec.register_implementation("counting", RangeCountingFileSystem, clobber=True)
    RangeCountingFileSystem.fetched.clear()
    return RangeCountingFileSystem


@pytest.mark.parametrize("fmt", ["jwst", "fits"])
def test_metadata_reads_fetch_headers_not_pixels(tmp_path, counting, fmt):
    ds = synthetic.write_dataset(tmp_path, n_dithers=1, n_detectors=1, shape=(512, 512), seed=2, fmt=fmt)
    path = ds.paths[0]
    size = path.stat().st_size
    url = f"counting://{path}"

    sources = resolve_inputs([url])
    assert counting.fetched == [(str(path), 0, 2880)]  # the client's check: the first block, by range

    counting.fetched.clear()
    (ref,) = describe_resolved(sources)
    assert counting.total() < 0.15 * size, (counting.total(), size)

    counting.fetched.clear()
    load_wcs(ref)
    assert counting.total() < 0.15 * size, (counting.total(), size)

    counting.fetched.clear()
    load_model_dict(ref, need_var=True, need_err=True)
    assert counting.fetched == [(str(path), 0, size)]  # the pixels: the whole object, in one request


@pytest.mark.parametrize("fmt", ["jwst", "fits"])
def test_objects_over_the_whole_read_limit_are_read_by_range(tmp_path, counting, fmt, monkeypatch):
    from dask_resample.inputs.drivers import _fitsfile

    ds = synthetic.write_dataset(tmp_path, n_dithers=1, n_detectors=1, shape=(256, 256), seed=3, fmt=fmt)
    path = ds.paths[0]
    (ref,) = describe_resolved(resolve_inputs([f"counting://{path}"]))
    whole = load_model_dict(ref, need_var=True, need_err=True)
    monkeypatch.setattr(_fitsfile, "WHOLE_READ_BYTES", path.stat().st_size - 1)
    counting.fetched.clear()
    ranged = load_model_dict(ref, need_var=True, need_err=True)
    assert len(counting.fetched) > 2  # headers and arrays, each by range
    assert max(end - start for _, start, end in counting.fetched) < path.stat().st_size
    assert whole.keys() == ranged.keys()
    for key, value in whole.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(ranged[key], value, err_msg=key)


# ----------------------------------------------------------------------------
# associations, records
# ----------------------------------------------------------------------------
def test_association_members_resolve_against_the_association_url(jwst_data, bucket, tmp_path):
    mem = fsspec.filesystem("memory")
    a, b = jwst_data.paths[:2]
    mem.put_file(str(a), f"/{bucket}/data/{a.name}")
    mem.put_file(str(b), f"/{bucket}/other/{b.name}")
    asn = json.loads(jwst_data.asn_path.read_text())
    members = asn["products"][0]["members"]
    members[:] = [
        dict(members[0], expname=f"../data/{a.name}"),
        dict(members[1], expname=f"memory://{bucket}/other/{b.name}"),
    ]
    mem.pipe_file(f"/{bucket}/asn/x_asn.json", json.dumps(asn).encode())
    sources = resolve_inputs(f"memory://{bucket}/asn/x_asn.json")
    assert [s.path for s in sources] == [f"memory://{bucket}/data/{a.name}", f"memory://{bucket}/other/{b.name}"]
    assert [s.filename for s in sources] == [a.name, b.name]
    assert [s.group_id for s in sources] == [m.get("group_id") for m in members]

    # a local association may list URLs
    local_asn = tmp_path / "mixed_asn.json"
    members[0]["expname"] = str(a)
    local_asn.write_text(json.dumps(asn))
    assert [s.path for s in resolve_inputs(local_asn)] == [str(a), f"memory://{bucket}/other/{b.name}"]


def test_storage_options_travel_with_the_records_and_nowhere_else(fits_data, bucket):
    urls = upload(list(fits_data.paths[:2]), bucket)
    options = {"secret_token": "s3kr1t"}  # the memory file system takes any keyword
    sources = resolve_inputs(urls, storage_options=options)
    assert all(isinstance(s, InputSource) and s.storage_options == options for s in sources)
    refs = describe_resolved(sources)
    for ref in refs:
        assert ref.storage_options == options and ref.location.storage_options == options
        assert isinstance(ref.source, str) and ref.source.startswith("memory://")
        assert "s3kr1t" not in repr(ref) and "s3kr1t" not in json.dumps(ref.to_record())
        back = pickle.loads(pickle.dumps(ref))
        assert back == ref and back.storage_options == options
        assert len(pickle.dumps(ref)) < 4096
    assert all(not r.storage_options for r in collect_exposures([str(p) for p in fits_data.paths[:2]]))


def test_input_fingerprint_follows_the_object(fits_data, bucket):
    url = upload([fits_data.paths[0]], bucket)[0]
    (ref,) = collect_exposures([url])
    before = input_fingerprint([ref.to_record()], {}, {})
    assert input_fingerprint([ref.to_record()], {}, {}, storage_options={}) == before
    data = fsspec.filesystem("memory").cat_file(ref.location.path)
    fsspec.filesystem("memory").pipe_file(ref.location.path, data + b"\0" * 2880)
    assert input_fingerprint([ref.to_record()], {}, {}) != before


# ----------------------------------------------------------------------------
# flagged files (outlier detection) written to URLs
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jwst", "fits"])
def test_write_flagged_to_a_url_equals_a_local_write(jwst_data, fits_data, bucket, tmp_path, fmt):
    path = (jwst_data if fmt == "jwst" else fits_data).paths[0]
    url = upload([path], bucket)[0]
    (u,) = collect_exposures([url])
    (loc,) = collect_exposures([str(path)])
    with fits.open(path) as hdul:
        shape = hdul["SCI"].data.shape
    mask = np.zeros(shape, bool)
    mask[10:14, 20:23] = True
    driver = driver_for(fmt)
    target = f"memory://{bucket}/out/{path.stem}_crf.fits"
    assert driver.write_flagged(u, mask, target, status="COMPLETE") == target
    driver.write_flagged(loc, mask, tmp_path / f"{path.stem}_crf.fits", status="COMPLETE")
    remote = fits.open(io.BytesIO(fsspec.filesystem("memory").cat_file(f"/{bucket}/out/{path.stem}_crf.fits")))
    with remote, fits.open(tmp_path / f"{path.stem}_crf.fits") as local:
        assert [h.name for h in remote] == [h.name for h in local]
        for hu, hl in zip(remote, local, strict=True):
            if hl.name == "ASDF" or hl.data is None:
                continue
            np.testing.assert_array_equal(hu.data, hl.data, err_msg=hl.name)
        dq = local["DQ"].data
        assert (dq[10:14, 20:23] != 0).all()


# ----------------------------------------------------------------------------
# bad inputs: one line naming the URL, before any work
# ----------------------------------------------------------------------------
def test_missing_object_is_named(bucket, tmp_path):
    url = f"memory://{bucket}/nope_cal.fits"
    with pytest.raises(InputError) as exc:
        resolve_inputs([url])
    assert one_line_error(exc, url).endswith("input file not found")
    with pytest.raises(InputError) as exc:
        dask_resample.resample([url], str(tmp_path / "m.zarr"), scheduler="serial")
    one_line_error(exc, url)
    assert not (tmp_path / "m.zarr").exists()


def test_unknown_scheme_is_named(tmp_path):
    with pytest.raises(StorageError) as exc:
        dask_resample.resample(["nosuch://bucket/x.fits"], str(tmp_path / "m.zarr"), scheduler="serial")
    one_line_error(exc, "nosuch://bucket/x.fits", "no file system")


def test_missing_library_is_named_with_the_fix():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    with pytest.raises(StorageError) as exc:
        resolve_inputs(["gs://bucket/x_cal.fits"])
    one_line_error(exc, "gs://bucket/x_cal.fits", "gcsfs", "pip install")


def test_missing_association_and_member_are_named(jwst_data, bucket):
    with pytest.raises(InputError) as exc:
        resolve_inputs(f"memory://{bucket}/none_asn.json")
    one_line_error(exc, f"memory://{bucket}/none_asn.json", "association file not found")
    urls = upload([jwst_data.asn_path, jwst_data.paths[0]], bucket)  # the other members are missing
    with pytest.raises(InputError) as exc:
        resolve_inputs(urls[0])
    one_line_error(
        exc,
        f"memory://{bucket}/{jwst_data.paths[1].name}",
        f"listed in association {jwst_data.asn_path.name} not found",
    )


def test_object_that_is_not_fits_is_named(bucket):
    mem = fsspec.filesystem("memory")
    mem.pipe_file(f"/{bucket}/notes.fits", b"not a FITS file at all" * 200)
    with pytest.raises(InputError) as exc:
        resolve_inputs([f"memory://{bucket}/notes.fits"])
    one_line_error(exc, f"memory://{bucket}/notes.fits", "not a FITS file")


def test_truncated_object_is_named_when_described(fits_data, bucket):
    mem = fsspec.filesystem("memory")
    data = fits_data.paths[0].read_bytes()
    mem.pipe_file(f"/{bucket}/cut.fits", data[: len(data) * 2 // 3])
    sources = resolve_inputs([f"memory://{bucket}/cut.fits"])  # the first block is fine
    with pytest.raises(InputError) as exc:
        describe_resolved(sources)
    one_line_error(exc, f"memory://{bucket}/cut.fits", "truncated")


# ----------------------------------------------------------------------------
# a real cluster reading from S3
# ----------------------------------------------------------------------------
def test_cluster_reads_inputs_from_s3(jwst_data, s3_bucket, client, tmp_path):
    name, options = s3_bucket
    fs = fsspec.filesystem("s3", **options)
    for p in (*jwst_data.paths, jwst_data.asn_path):
        fs.put_file(str(p), f"{name}/visit/{p.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        remote = dask_resample.resample(
            f"s3://{name}/visit/{jwst_data.asn_path.name}",
            tmp_path / "s3.zarr",
            client=client,
            storage_options=options,
            tile_shape=(48, 64),
        )
    local = dask_resample.resample(
        str(jwst_data.asn_path), str(tmp_path / "local.zarr"), scheduler="serial", tile_shape=(48, 64)
    )
    assert_same_mosaic(remote, local)
    with pytest.raises(StorageError) as exc:
        resolve_inputs(
            [f"s3://{name}/visit/{jwst_data.paths[0].name}"], storage_options={**options, "secret": "wrong" * 8}
        )
    one_line_error(exc, f"s3://{name}/visit/{jwst_data.paths[0].name}", "storage_options")
