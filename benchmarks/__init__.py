"""Benchmarks of the timing executors against the guide's naive executor and Covalent's own.

Run them all with ``tox -e bench`` (or ``python -m benchmarks.run``).
"""
