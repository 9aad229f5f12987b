"""Deprecated alias of :mod:`radiologynet.protocol` (the paper's protocol), kept for one
release. The speed benchmarks live in the repository's top-level ``benchmarks/`` folder."""

import sys

from radiologynet._deprecated import alias

sys.modules[__name__] = alias("radiologynet.benchmarks", "radiologynet.protocol")
