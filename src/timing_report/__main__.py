"""``python -m timing_report``: the same command as ``timing-executor``."""

import sys

from timing_report.cli import main

sys.exit(main())
