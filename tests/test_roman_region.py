"""Projection-region grids of romancal's sky tessellation, their tiles aligned to skycell boundaries.

The grids are checked against romancal's own WCSs of the skycells and regions in
the skymap subset shipped with romancal (its two polar projection regions), and a
region mosaic, cut at each skycell's box, against the skycell mosaics of
:func:`dask_resample.roman.resample_skycells` on the same small synthetic Roman
inputs (two 48 x 48 sub-arrays of one detector straddling the corner where four
skycells overlap).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from dask_resample import resample
from dask_resample.geometry.projection_regions import (
    projection_region_grid,
    projection_region_index,
    projection_region_output_wcs,
    projection_region_skycell_boxes,
    skycell_tile_shape,
)
from dask_resample.inputs.io import InputError
from dask_resample.testing import synthetic_roman

pytest.importorskip("romancal")
pytest.importorskip("romanisim")

#: A skycell well inside the subset's polar projection region (as in test_roman_cli).
SKYCELL = "135p90x47y41"

#: Skycell pixel (x, y) of SKYCELL near its far corner, inside the 200-pixel strips it shares with
#: 135p90x48y41, 135p90x47y42 and 135p90x48y42: inputs centred there fall partly outside SKYCELL.
CORNER_XY = (4990.0, 4990.0)


@pytest.fixture(scope="module")
def skymap_subset() -> Path:
    """The tessellation subset inside the romancal wheel (the polar projection regions)."""
    import romancal.skycell.skymap as sc

    path = Path(sc.__file__).parent / "tests" / "data" / "skymap_subset.asdf"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def romancal_skymap(skymap_subset):
    """romancal's skymap pointed at the subset."""
    from dask_resample.geometry.skycells import use_skymap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = use_skymap(skymap_subset)
        sm.model  # noqa: B018 (reads the file once, its version warning silenced)
    return sm


@pytest.fixture(scope="module")
def on_corner(tmp_path_factory, romancal_skymap):
    """2 exposures of a 48 x 48 sub-array of detector 7 at SKYCELL's far corner."""
    import romancal.skycell.skymap as sc

    ra, dec = sc.SkyCells.from_names([SKYCELL]).wcs[0].pixel_to_world_values(*CORNER_XY)
    logging.disable(logging.INFO)
    try:
        yield synthetic_roman.write_roman_dataset(
            tmp_path_factory.mktemp("roman_region"),
            n_exposures=2,
            detectors=(7,),
            shape=(48, 48),
            centre_on=(float(ra), float(dec)),
            seed=21,
            target=SKYCELL,
        )
    finally:
        logging.disable(logging.NOTSET)


def test_skymap_lattice_as_read(romancal_skymap):
    """The skycells of a region sit 5000 - 2 * 100 = 4800 pixels apart, on whole pixels of the region."""
    meta = romancal_skymap.model.meta
    assert (meta["nxy_skycell"], meta["skycell_border_pixels"]) == (5000, 100)
    for region in (0, 1):
        grid = projection_region_grid(region)
        assert grid.pitch == 4800 and grid.name == f"proj{region}"
        y0 = np.array([b.y0 for b in grid.skycells])
        x0 = np.array([b.x0 for b in grid.skycells])
        assert set(np.unique(np.diff(np.unique(x0)))) == {4800} and set(np.unique(np.diff(np.unique(y0)))) == {4800}
        assert y0.min() == 0 and x0.min() == 0
        assert grid.shape_yx == (int(y0.max()) + 5000, int(x0.max()) + 5000)
        assert len(grid.skycells) == int(
            romancal_skymap.model.projection_regions["skycell_end"][region]
            - romancal_skymap.model.projection_regions["skycell_start"][region]
        )


@pytest.mark.parametrize("region", [0, 1])
def test_region_pixels_are_skycell_pixels(region, romancal_skymap):
    """Skycell pixel (i, j) by romancal's skycell WCS is region-grid pixel (y0 + i, x0 + j) and romancal's
    region pixel (origin + y0 + i, origin + x0 + j)."""
    import romancal.skycell.skymap as sc

    grid = projection_region_grid(region)
    wcs = grid.wcs()
    region_wcs = sc.ProjectionRegion(region).wcs
    i, j = (a.ravel().astype(np.float64) for a in np.meshgrid([0, 17, 2500, 4800, 4999], [0, 333, 4899, 4999]))
    for box in grid.skycells[::97]:
        cell_wcs = sc.SkyCells([box.index]).wcs[0]
        ra, dec = cell_wcs.pixel_to_world_values(j, i)
        ra_g, dec_g = wcs.pixel_to_world_values(j + box.x0, i + box.y0)
        assert np.array_equal(ra_g, ra) and np.array_equal(dec_g, dec), box.name  # same numbers, bit for bit
        oy, ox = grid.origin_yx
        # skycells on the region's edge reach past romancal's region shape (nx, ny): no bounding box there
        ra_r, dec_r = region_wcs(j + box.x0 + ox, i + box.y0 + oy, with_bounding_box=False)
        sep = np.hypot((ra_r - ra) * np.cos(np.deg2rad(dec)), dec_r - dec) * 3.6e6  # milliarcsec
        assert sep.max() < 1e-6, box.name
        # back to pixels (without the bounding box: gwcs's footprint test fails around the pole)
        x, y = wcs.invert(ra, dec, with_bounding_box=False)
        assert np.abs(x - (j + box.x0)).max() < 1e-6 and np.abs(y - (i + box.y0)).max() < 1e-6, box.name


def test_one_skycell_grid_is_the_skycells_grid(romancal_skymap):
    """A grid of one skycell is romancal's WCS of it: same reference pixel, shape and mapping."""
    import romancal.skycell.skymap as sc

    grid = projection_region_grid("135p90", skycells=[SKYCELL])
    cell_wcs = sc.SkyCells.from_names([SKYCELL]).wcs[0]
    out = projection_region_output_wcs(0, skycells=[SKYCELL])
    assert out["wcs"].array_shape == (5000, 5000) and set(out) == {"wcs"}
    assert projection_region_skycell_boxes(0, skycells=[SKYCELL]) == {SKYCELL: (0, 0, 5000, 5000)}
    info = sc.SkyCells.from_names([SKYCELL]).wcs_infos[0]
    assert grid.crpix_yx == (info["y0_projection"], info["x0_projection"])
    x = np.array([0.0, 1234.5, 4999.0])
    assert np.array_equal(np.array(out["wcs"](x, x[::-1])), np.array(cell_wcs(x, x[::-1])))


def test_sub_box_origin_and_tiles_on_skycell_boundaries(romancal_skymap):
    """A sub-box starts on its first skycell; tiles of skycell_tile_shape start on every skycell's first pixel."""
    names = ["135p90x47y41", "135p90x48y41", "135p90x47y42", "135p90x48y42"]
    whole = projection_region_grid(0)
    boxes = projection_region_skycell_boxes(0, skycells=names)
    assert projection_region_grid(0, skycells=names).shape_yx == (9800, 9800)
    assert sorted(boxes.values()) == [
        (0, 0, 5000, 5000),
        (0, 4800, 5000, 9800),
        (4800, 0, 9800, 5000),
        (4800, 4800, 9800, 9800),
    ]
    for name, (y0, x0, _, _) in boxes.items():
        big = whole.box(name)
        assert (big.y0 - y0, big.x0 - x0) == (
            whole.box(names[0]).y0 - boxes[names[0]][0],
            whole.box(names[0]).x0 - boxes[names[0]][1],
        )
    assert skycell_tile_shape() == (960, 960) and skycell_tile_shape(1000) == (960, 960)
    assert skycell_tile_shape(2048) == (1600, 1600) and skycell_tile_shape(5000) == (4800, 4800)
    ty, tx = skycell_tile_shape()
    assert all(b.y0 % ty == 0 and b.x0 % tx == 0 for b in whole.skycells)


def test_whole_region_is_refused_by_the_output_limit(on_corner, tmp_path):
    """The whole polar region (245,000 pixels square) exceeds the default max_output_pixels before anything runs."""
    with pytest.raises(ValueError, match="exceeds max_output_pixels"):
        resample(
            on_corner.asn_path,
            tmp_path / "whole.zarr",
            output_wcs=projection_region_output_wcs(0, pixel_scale=0.055),
            scheduler="serial",
            progress=False,
        )
    assert not (tmp_path / "whole.zarr").exists()


@pytest.mark.parametrize("case", ["index", "proj_name", "region_part", "negative", "skycell_elsewhere"])
def test_bad_region_is_one_line_naming_the_parameter(case, romancal_skymap):
    """An unknown region (index or name), or a skycell of another region, fails in one line naming the parameter."""
    call, start = {
        "index": (lambda: projection_region_output_wcs(7), "region: 7 is not a projection region"),
        "proj_name": (lambda: projection_region_output_wcs("proj12"), "region: 'proj12' is not"),
        "region_part": (lambda: projection_region_grid("999p99"), "region: '999p99' is not"),
        "negative": (lambda: projection_region_index(-1), "region: -1 is not"),
        "skycell_elsewhere": (
            lambda: projection_region_output_wcs(1, skycells=[SKYCELL]),
            f"skycells: ['{SKYCELL}'] not in projection region 1",
        ),
    }[case]
    with pytest.raises(InputError) as err:
        call()
    assert str(err.value).startswith(start) and "\n" not in str(err.value)


def test_names_resolve_to_indices(romancal_skymap):
    assert [projection_region_index(r) for r in (0, "1", "proj1", "135p90", "000p86")] == [0, 1, 1, 0, 1]


@pytest.fixture(scope="module")
def region_mosaic(on_corner, skymap_subset, tmp_path_factory):
    """resample_region of the corner inputs (serial): its store's path and the RegionMosaic."""
    from dask_resample.roman import resample_region

    path = tmp_path_factory.mktemp("region") / "region.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return path, resample_region(on_corner.asn_path, path, skymap=skymap_subset, scheduler="serial", progress=False)


def test_region_mosaic_cut_at_each_skycell_is_its_skycell_mosaic(region_mosaic, on_corner, skymap_subset, tmp_path):
    """resample_region over the touched skycells, cut at each box, equals resample_skycells' mosaic of it.

    Inside the skycell (all but its outer EDGE rows and columns) ``con`` and the
    NaN pattern are equal and every float array equal to 1e-5 (in practice a
    float32 rounding at most: the two grids' reference pixels differ, so their
    pixel maps differ by ~1e-12 pixel), the variances (and ``err``) once scaled
    by each grid's ``pixel_scale_ratio`` (squared): the ratio is the grid's mean
    pixel scale, which differs between the region's box and one skycell by ~1e-5.
    In the outer band the skycell's own mosaic misses the input pixels whose
    centres map past its edge (drizzle drops them), which the region mosaic,
    extending further, keeps: there they differ.
    """
    from dask_resample.roman import resample_skycells
    from dask_resample.store import read_metadata

    region = region_mosaic[1]
    tile = skycell_tile_shape()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = resample_skycells(
            on_corner.asn_path,
            tmp_path / "cells",
            skymap=skymap_subset,
            scheduler="serial",
            tile_shape=tile,
            progress=False,
        )
    assert len(cells) == 4 and SKYCELL in cells  # the inputs straddle the corner of four skycells
    assert [b.name for b in region.grid.skycells] == list(cells)
    assert region.grid.region == 0 and region.mosaic["data"].chunks[-2][0] == tile[0]
    assert set(region.mosaic.data_vars) == set(cells[SKYCELL].data_vars)
    psr_region = region.mosaic.attrs["dask_resample"]["grid"]["pixel_scale_ratio"]
    for name, cell in cells.items():
        psr_cell = read_metadata(tmp_path / "cells" / f"{name}.zarr")["grid"]["pixel_scale_ratio"]
        cut = region.skycell(name)
        wht_a, wht_b = cut["wht"].values, cell["wht"].values
        if name == SKYCELL:  # the inputs cross its far edge: there the region mosaic has more weight
            assert (wht_a[-EDGE:, -EDGE:] > wht_b[-EDGE:, -EDGE:]).any()
        # only the inputs' window is read: elsewhere (inside the skycell) neither mosaic has weight
        rows, cols = np.nonzero((wht_a > 0) | (wht_b > 0))
        y0, x0 = max(int(rows.min()) - 4, EDGE), max(int(cols.min()) - 4, EDGE)
        y1, x1 = min(int(rows.max()) + 5, 5000 - EDGE), min(int(cols.max()) + 5, 5000 - EDGE)
        assert y0 < y1 and x0 < x1, name
        outside = np.zeros((5000, 5000), dtype=bool)  # inside the skycell, outside the window
        outside[EDGE : 5000 - EDGE, EDGE : 5000 - EDGE] = True
        outside[y0:y1, x0:x1] = False
        assert not wht_a[outside].any() and not wht_b[outside].any(), name
        dims = cut["data"].dims
        window = {dims[-2]: slice(y0, y1), dims[-1]: slice(x0, x1)}
        for var in sorted(cell.data_vars):
            assert cut[var].shape == cell[var].shape and cut[var].shape[-2:] == (5000, 5000), (name, var)
            a, b = cut[var].isel(window).values, cell[var].isel(window).values
            if a.dtype.kind == "f":
                power = {"err": 1, "var_rnoise": 2, "var_poisson": 2, "var_flat": 2}.get(var, 0)
                assert np.array_equal(np.isnan(a), np.isnan(b)), (name, var)
                np.testing.assert_allclose(
                    a * psr_region**power,
                    b * psr_cell**power,
                    rtol=1e-5,
                    atol=0,
                    equal_nan=True,
                    err_msg=f"{name} {var}",
                )
            else:
                assert np.array_equal(a, b), (name, var)


#: Outer rows and columns of a skycell where its own mosaic lacks the inputs mapping past its edge.
EDGE = 3


def test_cli_projection_region_equals_python_bit_for_bit(region_mosaic, on_corner, skymap_subset, tmp_path, capsys):
    """``run -o OUT --projection-region 135p90`` writes resample_region's mosaic (romancal's defaults)."""
    from dask_resample import cli, open_mosaic

    out = tmp_path / "cli.zarr"
    code = cli.main(
        [
            str(a)
            for a in [
                "run",
                on_corner.asn_path,
                "-o",
                out,
                "--projection-region",
                "135p90",
                "--skymap",
                skymap_subset,
                "--serial",
                "--quiet",
            ]
        ]
    )
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert stdout.split() == [str(out)]
    python_store, theirs = region_mosaic[0], region_mosaic[1].mosaic
    ours = open_mosaic(out)
    assert set(ours.data_vars) == set(theirs.data_vars)
    assert ours["data"].chunks == theirs["data"].chunks
    assert ours.attrs["dask_resample"]["wcs_asdf"] == theirs.attrs["dask_resample"]["wcs_asdf"]
    # every stored chunk (the arrays' bytes; tiles never written are fill) the same, byte for byte
    chunks = sorted(
        p.relative_to(out) for p in out.rglob("*") if p.is_file() and not p.name.startswith(("zarr.", ".z"))
    )
    assert chunks and chunks == sorted(
        p.relative_to(python_store)
        for p in python_store.rglob("*")
        if p.is_file() and not p.name.startswith(("zarr.", ".z"))
    )
    for rel in chunks:
        assert (out / rel).read_bytes() == (python_store / rel).read_bytes(), rel


@pytest.mark.parametrize("case", ["unknown", "with_skycells", "grid_option", "no_output"])
def test_cli_projection_region_errors_are_one_line_before_any_cluster(
    case, on_corner, skymap_subset, tmp_path, monkeypatch, capsys
):
    from dask_resample import cli
    from dask_resample.cli import commands

    calls: list = []
    monkeypatch.setattr(commands.cluster, "connect", lambda *a, **k: calls.append(a))
    base = ["run", on_corner.asn_path, "--skymap", skymap_subset, "--projection-region"]
    args, expected = {
        "unknown": ([*base, "7", "-o", tmp_path / "m.zarr"], "--projection-region: '7' is not a projection region"),
        "with_skycells": ([*base, "0", "--skycells", tmp_path / "cells"], "drop --skycells"),
        "grid_option": (
            [*base, "0", "-o", tmp_path / "m.zarr", "--pixel-scale", "0.1"],
            "the region is the output grid; drop --pixel-scale",
        ),
        "no_output": ([*base, "0"], "give the mosaic path or URL with -o OUT.zarr"),
    }[case]
    code = cli.main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("dask-resample: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert not calls and not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize("case", ["other_region", "untouched_names", "names_elsewhere"])
def test_resample_region_refusals_are_one_line(case, on_corner, skymap_subset, tmp_path):
    """resample_region refuses, before drizzling, a region or skycells the inputs do not reach."""
    from dask_resample.roman import resample_region

    kwargs, start = {
        "other_region": ({"region": 1}, "region: the inputs touch no skycell of projection region 1"),
        "untouched_names": ({"names": ["135p90x25y50"]}, "names: no input touches the skycells ['135p90x25y50']"),
        "names_elsewhere": (
            {"region": "proj1", "names": [SKYCELL]},
            f"skycells: ['{SKYCELL}'] not in projection region 1",
        ),
    }[case]
    with pytest.raises(InputError) as err:
        resample_region(
            on_corner.asn_path, tmp_path / "m.zarr", skymap=skymap_subset, scheduler="serial", progress=False, **kwargs
        )
    assert str(err.value).startswith(start) and "\n" not in str(err.value), str(err.value)
    assert not (tmp_path / "m.zarr").exists()
