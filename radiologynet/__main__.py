"""``python -m radiologynet`` runs the command line."""

import sys

from radiologynet.cli import console_main

sys.exit(console_main())
