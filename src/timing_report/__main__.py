"""``python -m timing_executor``: the same command as ``timing-executor``."""

import sys

from timing_executor.cli import main

sys.exit(main())
