"""Run the ``leyline-usage-sqlite`` command as ``python -m leyline_usage_sqlite``."""

import sys

from leyline_usage_sqlite.cli import main

sys.exit(main())
