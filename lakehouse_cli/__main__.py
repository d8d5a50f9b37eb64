"""`python -m lakehouse_cli ...` (what bin/lakehouse runs)."""

import sys

from lakehouse_cli.cli import main

sys.exit(main())
