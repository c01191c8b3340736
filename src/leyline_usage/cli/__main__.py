"""Run the CLI as ``python -m leyline_usage.cli``."""

import sys

from leyline_usage.cli import main

sys.exit(main())
