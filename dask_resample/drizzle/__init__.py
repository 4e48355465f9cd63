"""Drizzle: the fourth stage of the data flow, the pixel work of the worker tasks.

The drizzling of one exposure into the tiles it overlaps (``kernel``; the one-pass numba
``square``, ``turbo`` and Lanczos kernels in ``fused_kernel``), the tile accumulators and their deterministic
reduction (``reduce``), partials in scratch and where a run's intermediate files go (``scratch``),
and a worker's memory at a flat cost per task (``worker_memory``). The PyPI ``drizzle`` package is
always imported by its absolute name, never as this package.
"""
