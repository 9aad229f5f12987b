"""Deprecated alias of :mod:`radiologynet.torchdata.samples`, kept for one release."""

import sys

from radiologynet._deprecated import alias

sys.modules[__name__] = alias("radiologynet.train.data", "radiologynet.torchdata.samples")
