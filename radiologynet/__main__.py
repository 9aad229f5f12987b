"""``python -m radiologynet`` runs the command line."""

import sys

from radiologynet.cli import main

sys.exit(main())
