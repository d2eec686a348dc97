pytest_plugins = ["covalent_plugin_testing"]
