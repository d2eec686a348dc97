"""The two baselines, as executor plugin modules the benchmark's server loads.

The server finds them through ``COVALENT_EXECUTOR_DIR`` pointing at this folder.
"""
