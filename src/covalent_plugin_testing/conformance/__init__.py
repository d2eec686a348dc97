"""A conformance suite for any Covalent executor plugin.

Subclass :class:`ExecutorConformance` in a test module and give it an ``executor``
fixture (an executor instance, or a short name); pytest then runs every case on the
kit's real Covalent server (``pytest_plugins = ["covalent_plugin_testing"]``).
Importing this package does not import Covalent.
"""

from __future__ import annotations

import cloudpickle

from covalent_plugin_testing.conformance import tasks
from covalent_plugin_testing.conformance.suite import ExecutorConformance, case_names

# The tasks travel by value: where they run needs Covalent, not this package.
cloudpickle.register_pickle_by_value(tasks)

__all__ = ["ExecutorConformance", "case_names"]
