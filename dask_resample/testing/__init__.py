"""Testing: synthetic data at the edge of the flow.

Writers of synthetic exposures for the tests, benchmarks, notebooks and the demo: the sky and
noise shared by all writers (``synthetic_scene``), JWST-like and plain FITS datasets
(``synthetic``), SIAF instrument setups and their distortion (``synthetic_siaf``,
``synthetic_siaf_distortion``), Roman ``WfiImage`` files (``synthetic_roman``), survey layouts for
living mosaics (``synthetic_survey``), and the ``dask-resample demo`` command (``demo``).
"""
