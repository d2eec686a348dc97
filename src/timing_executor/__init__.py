"""Covalent executor plugins that record each task's CPU time.

Covalent must be imported before the plugin modules: importing ``covalent``
loads every installed executor plugin, and a plugin module that is itself
half-way through importing Covalent at that moment is registered without its
class and silently dropped. Importing ``covalent`` here, before any submodule
runs, makes ``import timing_executor.timing`` safe in any order.
"""

import covalent  # noqa: F401  (must come first, see the module docstring)

__version__ = "0.1.0"
