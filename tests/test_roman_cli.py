"""``dask-resample run --skycells`` and ``--mission roman``: the command line's Roman mosaics.

The command is run for real (``cli.main`` in this process, serial scheduler) on
small synthetic Roman WFI files (two 48 x 48 sub-arrays of one detector inside
one skycell of the skymap subset shipped with romancal) and its mosaics are
compared, bit for bit in every array, with what the Python API writes from the
same inputs (:func:`dask_resample.roman.resample_skycells`,
``resample(..., params=roman_params())``). ``--skycells s3://bucket/prefix`` is
run against the tests' S3 server and compared with the local-directory run.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample import cli, open_mosaic, resample
from dask_resample.cli import commands
from dask_resample.store import Location, as_location, read_metadata
from dask_resample.testing import synthetic_roman

pytest.importorskip("romancal")
pytest.importorskip("romanisim")

#: A skycell well inside the subset's polar projection region (as in test_roman_parity).
SKYCELL = "135p90x47y41"

#: Tiles of the 5000 x 5000 skycell grid.
TILE = ("1000", "1000")


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """Run ``cli.main`` in this process; return (status, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def quiet():
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def skymap_subset() -> Path:
    """The tessellation subset inside the romancal wheel (the polar projection regions)."""
    import romancal.skycell.skymap as sc

    path = Path(sc.__file__).parent / "tests" / "data" / "skymap_subset.asdf"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def on_skycell(tmp_path_factory, quiet):
    """2 exposures of a 48 x 48 sub-array of detector 7 inside skycell 135p90x47y41."""
    return synthetic_roman.write_roman_dataset(
        tmp_path_factory.mktemp("roman_cli"),
        n_exposures=2,
        detectors=(7,),
        shape=(48, 48),
        centre_on=(63.435, 89.3043),
        seed=15,
        target=SKYCELL,
    )


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail the test if a cluster is asked for (the checks must come first)."""
    calls: list = []

    def connect(*args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(commands.cluster, "connect", connect)
    return calls


def assert_same_mosaic(a_path: Path | Location, b_path: Path | Location) -> None:
    """Every array of two mosaics equal bit for bit (NaN payloads included), and the same parameters."""
    a, b = open_mosaic(a_path), open_mosaic(b_path)
    assert set(a.data_vars) == set(b.data_vars)
    for name in sorted(a.data_vars):
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype and x.shape == y.shape, name
        bits = f"u{x.dtype.itemsize}"
        assert np.array_equal(x.view(bits), y.view(bits)), f"{name} differs"
        del x, y
    assert read_metadata(a_path)["params"] == read_metadata(b_path)["params"]


def test_skycells_equal_python_bit_for_bit(on_skycell, skymap_subset, tmp_path, capsys):
    """One mosaic per touched skycell, named by skycell, equal to resample_skycells' (romancal's defaults)."""
    from dask_resample.roman import resample_skycells

    cli_dir = tmp_path / "cli"
    code, out, err = run_cli(
        [
            "run",
            on_skycell.asn_path,
            "--skycells",
            cli_dir,
            "--skymap",
            skymap_subset,
            "--serial",
            "--tile-shape",
            *TILE,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = resample_skycells(
            on_skycell.asn_path,
            tmp_path / "py",
            skymap=skymap_subset,
            scheduler="serial",
            tile_shape=tuple(int(n) for n in TILE),
            progress=False,
        )
    assert SKYCELL in ours
    assert out.split() == [str(cli_dir / f"{name}.zarr") for name in ours]
    assert sorted(p.name for p in cli_dir.iterdir()) == sorted(f"{name}.zarr" for name in ours)
    for name in ours:
        assert_same_mosaic(cli_dir / f"{name}.zarr", tmp_path / "py" / f"{name}.zarr")
    params = read_metadata(cli_dir / f"{SKYCELL}.zarr")["params"]
    assert params["good_bits"] == "~DO_NOT_USE" and params["pixmap_stepsize"] == 10 and params["compute_exptime"]


def test_mission_roman_equals_roman_params(on_skycell, tmp_path, capsys):
    """``run --mission roman`` is ``resample(..., params=roman_params())``; without it, jwst's step defaults."""
    from dask_resample.roman import roman_params

    out = tmp_path / "cli.zarr"
    code, _, err = run_cli(
        ["run", on_skycell.asn_path, "-o", out, "--mission", "roman", "--serial", "--tile-shape", 32, 32, "--quiet"],
        capsys,
    )
    assert code == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resample(
            on_skycell.asn_path,
            tmp_path / "py.zarr",
            params=roman_params(),
            scheduler="serial",
            tile_shape=(32, 32),
            progress=False,
        )
    assert_same_mosaic(out, tmp_path / "py.zarr")

    config = tmp_path / "opts.yaml"
    config.write_text("mission: roman\npixfrac: 0.5\n")
    code, _, err = run_cli(["plan", on_skycell.asn_path, "--config", config], capsys)
    assert code == 0, err


def test_mission_default_stays_jwst():
    from dask_resample.cli.main import build_parser
    from dask_resample.cli.options import DRIZZLE, drizzle_for
    from dask_resample.params import ResampleParams, step_defaults
    from dask_resample.roman import roman_params

    args = build_parser().parse_args(["run", "x.asdf", "-o", "m.zarr"])
    v = commands._resolve_drizzle(args, (commands.MISSION, *commands.DRIZZLE_OPTIONS), ("inputs", "output"))
    assert v["mission"] == "jwst"
    assert commands._params(v) == ResampleParams(**step_defaults("jwst")) == DRIZZLE.build(v)
    args = build_parser().parse_args(["run", "x.asdf", "--skycells", "out"])
    options = (commands.MISSION, *commands.DRIZZLE_OPTIONS, *commands.SKYCELL_OPTIONS)
    v = commands._resolve_drizzle(args, options, ("inputs", "output"))
    built = commands._params(v)
    assert v["mission"] == "roman" and built == roman_params()
    assert built.good_bits_mask == roman_params().good_bits_mask
    assert drizzle_for("roman").build({}).flag_name_map == roman_params().flag_name_map


def _fits_file(path: Path) -> Path:
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((4, 4), dtype=np.float32)).writeto(path)
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing_skymap",
        "missing_env_skymap",
        "no_skymap",
        "with_output",
        "not_roman",
        "skymap_alone",
        "grid_option",
        "outliers",
    ],
)
def test_skycell_errors_are_one_line_before_any_cluster(
    case, on_skycell, skymap_subset, tmp_path, monkeypatch, no_cluster, capsys
):
    import romancal.skycell.skymap as sc

    monkeypatch.delenv("SKYMAP_PATH", raising=False)
    base = ["run", on_skycell.asn_path, "--skycells", tmp_path / "out"]
    missing = tmp_path / "missing.asdf"
    args, expected = {
        "missing_skymap": ([*base, "--skymap", missing], f"--skymap: {missing}: skymap file not found"),
        "missing_env_skymap": (base, f"SKYMAP_PATH: {missing}: skymap file not found"),
        "no_skymap": (base, "--skymap: no skymap file"),
        "with_output": ([*base, "--skymap", skymap_subset, "-o", tmp_path / "m.zarr"], "drop -o/--output"),
        "not_roman": (
            ["run", _fits_file(tmp_path / "plain.fits"), "--skycells", tmp_path / "out", "--skymap", skymap_subset],
            "plain.fits: not a Roman WFI input",
        ),
        "skymap_alone": (
            ["run", on_skycell.asn_path, "-o", tmp_path / "m.zarr", "--skymap", skymap_subset],
            "--skymap: only with --skycells",
        ),
        "grid_option": (
            [*base, "--skymap", skymap_subset, "--pixel-scale", "0.1"],
            "each skycell is its own output grid; drop --pixel-scale",
        ),
        "outliers": ([*base, "--skymap", skymap_subset, "--outliers"], "--outliers:"),
    }[case]
    if case == "missing_env_skymap":
        monkeypatch.setenv("SKYMAP_PATH", str(missing))
    if case == "no_skymap":
        monkeypatch.setattr(sc.SKYMAP, "path", None)
    code, out, err = run_cli(args, capsys)
    assert code == 1
    assert err.startswith("dask-resample: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert not no_cluster
    assert not (tmp_path / "out").exists()


def test_help_lists_the_roman_options(capsys):
    code, out, _ = run_cli(["run", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    for flag in (
        "--skycells OUTDIR",
        "--skymap FILE.asdf",
        "--mission {jwst,roman}",
        "SKYMAP_PATH",
        "good_bits ~DO_NOT_USE,",
    ):
        assert flag in flat, flag
    code, out, _ = run_cli(["plan", "--help"], capsys)
    assert code == 0 and "--mission" in out and "--skymap" not in out  # skycells: run only


def _s3_args(storage_options: dict) -> list[str]:
    """``--storage-option KEY=VALUE`` arguments of the test server's options (dotted keys for tables)."""
    args: list[str] = []
    for key, value in storage_options.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            args += ["--storage-option", f"{key}.{sub}={v}" if sub else f"{key}={v}"]
    return args


def test_skycells_on_s3_equal_local_bit_for_bit(on_skycell, skymap_subset, tmp_path, s3_bucket, capsys):
    """``--skycells s3://bucket/prefix``: the same mosaics, object names and output as a local directory."""
    bucket, opts = s3_bucket
    local = tmp_path / "local"
    common = [on_skycell.asn_path, "--skymap", skymap_subset, "--serial", "--tile-shape", *TILE, "--quiet"]
    code, out_local, err = run_cli(["run", *common, "--skycells", local], capsys)
    assert code == 0, err
    url = f"s3://{bucket}/survey/skycells"
    code, out_s3, err = run_cli(["run", *common, "--skycells", url, *_s3_args(opts)], capsys)
    assert code == 0, err
    names = [Path(line).name for line in out_local.split()]
    assert SKYCELL + ".zarr" in names
    assert out_s3.split() == [f"{url}/{name}" for name in names]
    where = as_location(url, opts)
    assert where.listdir() == sorted(names)
    for name in names:
        assert_same_mosaic(where.join(name), local / name)
        meta_s3, meta_local = read_metadata(where.join(name)), read_metadata(local / name)
        # an object store is sharded (4 x 4 tiles per object), a local directory one tile per chunk file
        assert meta_s3["grid"].pop("shard_tiles") == [4, 4] and meta_local["grid"].pop("shard_tiles") == [1, 1]
        assert meta_s3 == meta_local


@pytest.mark.parametrize("case", ["no_bucket", "bucket_root", "object_there", "bad_credentials"])
def test_skycells_unusable_url_is_one_line_before_any_cluster(
    case, on_skycell, skymap_subset, s3_bucket, no_cluster, capsys
):
    bucket, opts = s3_bucket
    if case == "object_there":
        as_location(f"s3://{bucket}/taken", opts).write_bytes(b"x")
    url, expected = {
        "no_bucket": ("s3://no-such-bucket-here/skycells", "no such bucket 'no-such-bucket-here'"),
        "bucket_root": (f"s3://{bucket}", "give a prefix inside the bucket"),
        "object_there": (f"s3://{bucket}/taken", "an object is there"),
        "bad_credentials": (f"s3://{bucket}/skycells", f"s3://{bucket}/skycells: "),
    }[case]
    if case == "bad_credentials":
        opts = {**opts, "secret": "wrong"}
    code, out, err = run_cli(
        ["run", on_skycell.asn_path, "--skycells", url, "--skymap", skymap_subset, *_s3_args(opts)], capsys
    )
    assert code == 1
    assert err.startswith("dask-resample: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert not no_cluster
    assert as_location(f"s3://{bucket}/skycells", s3_bucket[1]).listdir() == []


def test_resample_skycells_on_s3_from_a_cluster(on_skycell, skymap_subset, tmp_path, s3_bucket, client):
    """``resample_skycells`` to an S3 prefix with a cluster's workers writing: the local run's arrays."""
    from dask_resample.roman import resample_skycells

    bucket, opts = s3_bucket
    url = f"s3://{bucket}/py"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = resample_skycells(
            on_skycell.asn_path,
            tmp_path,
            skymap=skymap_subset,
            names=[SKYCELL],
            scheduler="serial",
            tile_shape=(1000, 1000),
            progress=False,
        )
        remote = resample_skycells(
            on_skycell.asn_path,
            url,
            skymap=skymap_subset,
            names=[SKYCELL],
            storage_options=opts,
            client=client,
            tile_shape=(1000, 1000),
            progress=False,
        )
    assert list(remote) == list(local) == [SKYCELL]
    assert as_location(url, opts).listdir() == [f"{SKYCELL}.zarr"]
    assert_same_mosaic(as_location(f"{url}/{SKYCELL}.zarr", opts), tmp_path / f"{SKYCELL}.zarr")
