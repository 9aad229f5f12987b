"""Deprecated alias of :mod:`radiologynet.torchdata` (torch ``Dataset`` classes and the
decoded-image cache), kept for one release."""

import sys

from radiologynet._deprecated import alias

sys.modules[__name__] = alias("radiologynet.data", "radiologynet.torchdata")
