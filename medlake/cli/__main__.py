"""`python -m medlake.cli ARGS`: the `lakehouse` command without its console script."""

import sys

from medlake.cli import main

sys.exit(main())
