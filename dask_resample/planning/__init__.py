"""Planning: the third stage of the data flow.

The plan of a mosaic, made before any pixel is read: each exposure's footprint on the output
grid, the overlap index of exposures and tiles, and :class:`~dask_resample.planning.plan.MosaicPlan`
with its summary and coverage figure (``plan``); the planning step as a whole, inputs in, a plan
out, and a plan's empty store (``mosaic``: ``plan_mosaic``, ``create_plan_store``).
"""
