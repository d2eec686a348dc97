"""The test session runs as a plugin author's would: ``covalent_plugin_testing``
isolates it in a temporary home (before any test module imports covalent) and gives
the session fixture ``covalent_server``, a real Covalent server."""

pytest_plugins = ["covalent_plugin_testing"]
