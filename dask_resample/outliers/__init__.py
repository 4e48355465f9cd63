"""Imaging outlier detection (jwst's ``OutlierDetectionStep``), distributed tile by tile.

:func:`detect_outliers` writes ``*_crf.fits`` files; ``resample(...,
outliers=True)`` flags and mosaics in one graph. Module by module:

* :mod:`~.params`: :class:`OutlierParams`, the step's parameters;
* :mod:`~.threshold`: each group image's weight threshold, exactly;
* :mod:`~.median`: the median across groups, per tile;
* :mod:`~.blot`: the median blotted onto one input from the tiles it overlaps;
* :mod:`~.flag`: one input's mask; :mod:`~.products`: the files written;
* :mod:`~.graph`, :mod:`~.stage`, :mod:`~.api`: the graph, its set-up and the entry point.
"""

from .api import OutlierDetectionError, detect_outliers
from .params import OutlierParams

__all__ = ["OutlierDetectionError", "OutlierParams", "detect_outliers"]
