"""`python -m lockstep` runs the command line."""

import sys

from lockstep.cli import main

sys.exit(main())
