"""Inputs: the first stage of the data flow.

Everything that turns what the user passes (association files, paths, URLs, datamodels,
:class:`~dask_resample.inputs.records.Exposure` records) into small ``ExposureRef`` records and,
on the workers, into the pixel arrays and WCS of one exposure: input resolution and metadata
reads (``io``), the shared records (``records``), task failures as values (``failures``), outlier
masks (``dqmask``), whole-file intermediate products on any store (``_files``) and one driver per
input format behind the ``InputDriver`` protocol (``drivers/``).
"""
