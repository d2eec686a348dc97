"""The ``timing-executor report`` command: read, summarize and compare timing records.

A package of its own, beside ``timing_executor``, because importing anything from
``timing_executor`` imports Covalent first (see its ``__init__``).
"""
