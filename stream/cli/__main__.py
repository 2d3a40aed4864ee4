"""`python -m stream.cli ...` runs `logad ...` (where the console script is not installed)."""

import sys

from stream.cli import main

sys.exit(main())
