"""Where the guide explains each fix: the sections failure messages point to."""

from __future__ import annotations

#: The guide's page on writing an executor.
_HOW_TO = "docs/how-to/create-custom-executor.md"

SECTIONS = {
    "workflow": f"{_HOW_TO}#use-it-in-a-workflow",
    "plain-value": f"{_HOW_TO}#the-dispatch-never-finishes-run-returned-a-plain-value",
    "output": f"{_HOW_TO}#output-errors-and-exits-in-the-result",
    "process": f"{_HOW_TO}#timingexecutor-each-task-in-a-process-of-its-own",
    "outlives": f"{_HOW_TO}#nothing-a-task-starts-outlives-it",
    "cancel": f"{_HOW_TO}#cancellation",
    "in-thread": f"{_HOW_TO}#what-the-small-plugin-leaves-to-chance",
    "threads": "docs/explanation/where-executors-run.md#why-it-matters-for-long-tasks",
    "equal-calls": "docs/how-to/time-tasks-on-dask.md#equal-calls-that-run-once",
    "plugin-found": f"{_HOW_TO}#the-plugin-is-not-found",
}


def see(section: str) -> str:
    """The sentence that sends the reader to the guide's ``section``."""
    return f"The guide explains the fix: {SECTIONS[section]}"
