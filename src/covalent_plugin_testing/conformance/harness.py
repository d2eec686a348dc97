"""What every case works with: the checked executor, the server, bounded
dispatches, and the dispatches that several cases share."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covalent_plugin_testing.conformance.dispatching import (
    CaseFailure,
    Finished,
    run_workflow,
    server_answers,
)
from covalent_plugin_testing.conformance.guide import see

#: The outcome of each shared dispatch, by test class and group name: a finished
#: dispatch, or the failure every case of the group reports.
_shared: dict[tuple[type, str], Finished | dict | CaseFailure] = {}


@dataclass
class Harness:
    """One case's view of the executor under test and of the kit's server."""

    owner: type
    executor: Any
    server: Any
    folder: Path
    timeout: float
    cancel_limit: float
    token: str = field(default_factory=lambda: f"CONFORMANCE-{uuid.uuid4().hex[:8]}")

    def run(self, workflow: Any, *args: Any) -> Finished:
        """Dispatch ``workflow(*args)`` and return it finished, bounded."""
        return run_workflow(workflow, self.timeout, self.server.url, *args)

    def shared(self, group: str, make: Callable[[Harness], Any]) -> Any:
        """What ``make(self)`` gave the first case of this class that asked for
        ``group``; a failure it raised is raised again for every case of the group."""
        key = (self.owner, group)
        if key not in _shared:
            try:
                _shared[key] = make(self)
            except CaseFailure as failure:
                _shared[key] = failure
        outcome = _shared[key]
        if isinstance(outcome, CaseFailure):
            raise CaseFailure(str(outcome))
        return outcome

    def server_log(self) -> str:
        log = self.server.home / ".cache" / "covalent" / "covalent_ui.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def assert_next_task_runs(self, after: str) -> None:
        """The server answers and a new dispatch with the executor completes; if
        not, the server is restarted (so the other cases can run) and the case fails."""
        from covalent_plugin_testing.conformance import tasks, workflows
        from covalent_plugin_testing.server import restart_server

        problem = None
        if not server_answers(self.server.url):
            problem = "the Covalent server stopped answering"
        else:
            try:
                done = self.run(workflows.one_task(self.executor, tasks.square, 6))
                if done.result.result != 36:
                    problem = f"the next dispatch ended {done.result.status}: {done.result.error}"
            except CaseFailure as failure:
                problem = f"the next dispatch failed: {failure}"
        if problem is not None:
            restart_server(self.server)
            raise CaseFailure(
                f"after {after}, {problem}: a user's next tasks with this executor fail "
                f"until the server restarts (the suite restarted it). {see('process')}"
            )


def text_of(node: dict) -> str:
    """Everything a node says went wrong: its stderr and its error."""
    return f"{node.get('stderr') or ''}\n{node.get('error') or ''}"


def fail(what: str, saw: str, section: str) -> None:
    """Raise :class:`CaseFailure`: what a user would see, and where the fix is."""
    raise CaseFailure(f"{what}. A user of this executor sees: {saw}. {see(section)}")
