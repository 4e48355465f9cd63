"""One-pass ``square``, ``turbo``, ``lanczos2`` and ``lanczos3`` drizzle kernels (numba), at parity with drizzle's C.

Why
---
``stcal.resample`` (and :mod:`dask_resample.drizzle.kernel` today) drizzles an exposure with
drizzle's C ``Drizzle.add_image`` once for the data and once per variance plane
(``var_rnoise``, ``var_flat``, ``var_poisson``): four walks over the same input
pixels, each recomputing the same overlap geometry for one output array. The
kernels here walk the input once: for each input pixel they compute its footprint
on the output grid and its overlap with each output pixel once, and update every
output plane with it: data, weight, context bits, data quality, and any number of
extra planes drizzled with the same weights (the variances, a drizzled error).

Why numba
---------
numba and llvmlite publish wheels on PyPI for CPython 3.12 on Linux (x86-64,
aarch64), macOS and Windows, so ``pip install dask-resample[fast]`` needs no
compiler, unlike a C or Cython extension built from an sdist. The same Python
source can be compiled for a GPU by ``numba.cuda`` (see below).

The first call in a process compiles the kernel for the argument types it sees:
11-19 s for one kernel and its polygon set-up on a busy 2-core machine
(``benchmarks/bench_fused_kernel.py``). Each combination of optional arrays (weight
map, context, DQ, extra planes, per-input weight) and of dtypes is a
specialisation of its own, compiled once. ``cache=True`` writes the machine code
to ``__pycache__`` beside this file (or ``NUMBA_CACHE_DIR``), so later processes,
Dask workers included, load a specialisation in about 0.4 s; a new numba
version, CPU model or edit of this file compiles once more. :func:`warm_up`
compiles the common specialisations ahead of time. Importing numba adds about
50 MiB to a process.

Exact arithmetic (what makes the numbers drizzle's)
---------------------------------------------------
Everything below transcribes drizzle 2.2.0's ``src/cdrizzlebox.c`` and
``src/cdrizzlemap.c`` operation for operation, in the same precision (``float`` where
the C uses ``float``) and order, with no fast-math and no FMA contraction (numba's
defaults), ``error_model="numpy"`` (IEEE division by zero, as C), and C's ``round``
(half away from zero) where the C calls ``round`` (Python's rounds half to even).

Per call (``add_image``), as drizzle's ``tdriz``:

1. The input box ``xmin..xmax, ymin..ymax`` (``add_image``'s arguments, clipped to
   the image; ``xmax == 0`` means the last column) is shrunk to the rows and
   columns with a finite pixel map (``shrink_image_section``); fewer than two
   valid rows or columns raise ``ValueError("No or too few valid pixels in the
   pixel map.")``, as drizzle does.
2. The box's outline is mapped to the output, clipped to the output frame
   (Sutherland-Hodgman), and the clipped polygon is mapped back to the input by
   a golden-section inversion of the pixel map. Only input rows and columns
   inside that polygon (with drizzle's 0.03-pixel slack) are drizzled: an input
   pixel whose centre region falls outside the output frame contributes nothing,
   even where its footprint would overlap the frame's edge pixels.
3. ``in_units="counts"`` divides ``iscale`` by the exposure time (``float32``).

Per input pixel ``(j, i)`` (``y``, ``x``) with a finite map:

- ``d = float32(data[j, i]) * iscale`` (``float32``); ``w = float32(weight[j, i]) *
  wht_scale`` (``float32``; 1 without a weight map, as the C).
- **square**: the corners of the pixel shrunk by ``pixfrac`` are interpolated
  bilinearly in the pixel map (``interpolate_four_points`` inside the map,
  ``interpolate_point`` with extrapolation on its outer two rows and columns); any
  NaN corner skips the pixel. ``jaco`` is half the cross product of the
  diagonals; the weight is ``w / jaco`` (double). For each output pixel of the
  corners' rounded bounding box (clipped to the frame), ``dover = boxer(...)``
  (exact polygon/unit-square overlap area, ``sgarea`` per edge).
- **turbo**: the pixel's centre ``(ox, oy) = pixmap[j, i]`` (NaN skips it) carries
  an axis-aligned square of half-side ``pfo = pixfrac / pixel_scale_ratio / 2``;
  ``dover = over(...) * (pixel_scale_ratio / pixfrac)**2`` for each output pixel
  with positive overlap.
- **lanczos2**, **lanczos3** (``do_kernel_lanczos``; ``pixfrac`` ignored): the centre
  ``(xx, yy) = pixmap[j, i]`` (NaN skips it) reaches ``pfo = order / pixel_scale_ratio``;
  for each output pixel ``ii`` of ``floor(xx - pfo) + 1 .. floor(xx + pfo)`` (and ``jj``
  alike, clipped to the frame), ``ix = nintd(|(xx - ii) * sdp|)``, ``sdp =
  pixel_scale_ratio / 0.003``; an index beyond drizzle's table (``create_lanczos_lut``,
  0.003 apart, computed with the same ``sin``) is no hit, else ``dover = lut[ix] *
  lut[iy]`` (negative in the side lobes); the weight is ``w``.
- ``dow = float32(dover * w)``; ``dow == 0`` changes nothing.

Per output pixel ``(jj, ii)`` hit with ``dow != 0`` (``update_data``; ``vc`` the
weight before, all ``float32`` unless said)::

    vcd = double(vc + dow)                          # the float32 sum, widened
    img = d                                        if vc == 0
    img = float32((img * vc + dow * d) / vcd)      otherwise (numerator in float32)
    wht = float32(vcd)
    ctx[plane] |= 1 << (ctx_id % 32)               if dow > 0  (int32 planes; plane = ctx_id // 32)
    dq = dq_in                                     if vc == 0, else dq |= dq_in

After the pass, output pixels with ``wht == 0`` take the fill value (``put_fill``).

Extra planes
------------
Each extra input plane ``e`` is drizzled with the same ``dow`` as the data, as a
separate ``add_image`` with the same weight map would drizzle it:
``d_e = float32(e[j, i]) * iscale`` (``float32(sqrt(double(e[j, i]))) * iscale`` for
a variance, whose square root is drizzled), and the update above with
``c`` in place of ``vc``, where ``c`` is

- the data's own weight ``vc`` for a plane accumulated like the data over all
  inputs (a drizzled error: stcal's ``_driz_error`` has its own weight array, equal
  to the data's at every step because it receives the same ``dow`` sequence);
- the weight of this input alone for a variance (stcal drizzles each input's
  ``sqrt(var)`` onto a fresh frame). On a fresh frame this is the data's weight
  again; otherwise :class:`FusedDrizzle` keeps one per-input weight plane.

Extra planes share the data's ``iscale``, ``in_units`` and ``wht_scale``. stcal
drizzles its variances with ``in_units="cps"`` and ``wht_scale=1`` and its data
with the same, so this is its arithmetic; with ``in_units="counts"`` a variance's
square root is divided by the exposure time like the data (rates).

Variances, the stcal way (``stcal.resample.Resample.resample_variance_arrays``):
per input, with ``m`` the drizzled ``sqrt(var)`` (NaN where this input's weight is
0, ``fillval=NaN``), ``v = float32(m * m)``, and the per-pixel weight
``W = double(float32(1) / float32(m_rn * m_rn))`` where the drizzled read-noise
variance is finite and > 0, else 0 (``weight_type="ivm"``), or ``W = tmeasure``
(``"exptime"``); where ``v >= 0``, ``v`` finite and ``W > 0``::

    wsum = float32((0 if wsum is NaN else double(wsum)) + (double(v) * W) * W)
    wt   = float32(double(wt) + W)

(``wsum`` starts NaN, ``wt`` 0, both ``float32``), and at the end
``var = wsum * scaling / wt / wt`` in ``float32`` (``scaling =
1 / pixel_scale_ratio**2`` for imaging). :meth:`FusedDrizzle.add_image` does the
per-input step in a second pass over the output box the input touched, which
also resets the per-input planes for the next input.

Design for a GPU version
------------------------
The work is split into

1. **geometry**, per input pixel and per (input, output) pixel pair:
   :func:`_square_corners`, :func:`_boxer` / :func:`_sgarea`, :func:`_turbo_box`,
   :func:`_over` and the Lanczos table's look-ups. These are pure scalar functions (scalars in, tuples of scalars
   out, reads of the pixel map only; no allocation, no exceptions), so
   ``numba.cuda.jit(device=True)`` compiles the same Python functions
   (``f.py_func``) as device functions unchanged;
2. **accumulation**, per output pixel hit: :func:`_mean_update`, the running
   weighted mean of one plane (scalars in, the new value out), applied to the
   data and each extra plane, with the weight, context and DQ updates beside it;
3. a **driver** (:func:`_kernel_pass`, one body for every kernel) that walks the input
   rows the scanner (:func:`_init_image_scanner`, :func:`_scanline_limits`: per
   call, on the host) allows, calls 1 (the kernel's functions of :mod:`.footprints`,
   chosen when the driver compiles), and does the loads and stores of 2. Arrays stay in the driver:
   numba counts a reference for every array passed to an inlined function, which
   per output pixel hit cost as much as the whole C update.

A GPU driver keeps 1 and the scanner and replaces 3: one thread per input pixel
computes its geometry, and contributions go to per-output-pixel sums
``sum(dow * d)``, ``sum(dow)`` (and ``sum(dow * d_e)`` per extra plane) with atomic
adds, the context with ``atomic_or``; the running mean ``img`` of :func:`_mean_update`
is then ``sum(dow * d) / sum(dow)``, the same quantity drizzle's running update
computes. Atomic float adds take contributions in no fixed order, so a GPU result
agrees with drizzle's C to float32 rounding (about 1e-6 relative), not
bit-for-bit; the CPU kernels here keep drizzle's input order and match it
exactly.

Not covered here: the ``point`` and ``gaussian`` kernels, and
``pixfrac <= 0.001`` (which drizzle replaces by ``point``); :class:`FusedDrizzle`
raises for them.

The code: :mod:`.common` (drizzle's constants, the numba decorators, scalar helpers),
:mod:`.geometry` (per input pixel: footprints, overlaps, polygon clipping, map inversion),
:mod:`.scanner` (the scan lines of the input box), :mod:`.passes` (the ``square`` and
``turbo`` passes, fill, stcal variances), :mod:`.once` (:func:`drizzle_once`) and
:mod:`.driver` (:class:`FusedDrizzle`, :func:`finalize_variances`, :func:`warm_up`).
"""

from __future__ import annotations

from .common import KERNELS
from .driver import FusedDrizzle, finalize_variances, warm_up
from .once import drizzle_once, shrunk_range

__all__ = [
    "KERNELS",
    "FusedDrizzle",
    "drizzle_once",
    "finalize_variances",
    "shrunk_range",
    "warm_up",
]
