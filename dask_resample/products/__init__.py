"""Products: the last stage of the data flow, what is made from a finished mosaic.

The ``ds.mosaic`` accessor (``accessor``), plain-FITS export (``export``), PNG figures
(``figures``), multiscale levels (``pyramid``) and text reports of plans, mosaics and runs
(``report``). These modules read a mosaic through ``store``; none of them drizzles.
"""
