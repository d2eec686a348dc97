"""Dispatch to the kit's server with every wait bounded, and read nodes back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class CaseFailure(AssertionError):
    """What a case found wrong, said as a user of the executor would meet it."""


def server_answers(url: str, timeout: float = 5) -> bool:
    """Whether the server at ``url`` answers an HTTP request within ``timeout`` s."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_status(dispatch_id: str, limit: float, url: str) -> str:
    """Poll the dispatch's status until it is final; its status, or a
    :class:`CaseFailure` after ``limit`` s or when the server stops answering."""
    import covalent as ct

    deadline = time.monotonic() + limit
    status = "unknown"
    while True:
        try:
            answer = ct.get_result(dispatch_id, status_only=True)
        except Exception as error:
            if wait_until(lambda: not server_answers(url, timeout=1), limit=5):
                raise CaseFailure(
                    f"the Covalent server stopped answering during the dispatch "
                    f"({error!r}): a user of this executor loses every dispatch in "
                    "flight, and the next ct.dispatch fails with a ConnectionError"
                ) from error
            raise CaseFailure(
                f"the server answered ct.get_result for the dispatch with {error!r}"
            ) from error
        status = str(answer["status"])
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise CaseFailure(
                f"the dispatch was still {status} after {limit:.0f} s: a user's "
                "ct.get_result(dispatch_id, wait=True) would wait for ever"
            )
        time.sleep(0.1)


@dataclass
class Finished:
    """A finished dispatch: its result and its nodes by electron name."""

    result: Any
    nodes: dict[str, list[dict]]
    extra: dict = field(default_factory=dict)

    def node(self, name: str, index: int = 0) -> dict:
        return self.nodes[name][index]


def finish(dispatch_id: str, limit: float, url: str) -> Finished:
    """Wait (bounded) for the dispatch, then read its result as a user would."""
    import covalent as ct

    wait_for_status(dispatch_id, limit, url)
    try:
        result = ct.get_result(dispatch_id)
    except Exception as error:
        raise CaseFailure(
            f"ct.get_result could not read the finished dispatch: {error!r}"
        ) from error
    graph = result.lattice.transport_graph
    nodes: dict[str, list[dict]] = {}
    for node_id in sorted(graph._graph.nodes):
        name = graph.get_node_value(node_id, "name")
        nodes.setdefault(name, []).append(result.get_node_result(node_id))
    return Finished(result, nodes)


def run_workflow(workflow: Any, limit: float, url: str, *args: Any, **kwargs: Any) -> Finished:
    """Dispatch ``workflow(*args, **kwargs)`` and return it finished (bounded)."""
    import covalent as ct

    return finish(ct.dispatch(workflow)(*args, **kwargs), limit, url)


def wait_until(condition: Any, limit: float, step: float = 0.05) -> bool:
    """Whether ``condition()`` became true within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
