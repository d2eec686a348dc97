"""Check what a test class's ``executor`` fixture gives, once, before any case."""

from __future__ import annotations

from typing import Any


class BadExecutor(Exception):
    """The ``executor`` fixture gave nothing the suite can test; says why."""


def short_names() -> list[str]:
    """The executors' short names this process's Covalent knows (as the server,
    which loads the same plugins)."""
    from covalent.executor import _executor_manager

    return sorted(_executor_manager.executor_plugins_map)


def checked(value: Any) -> Any:
    """``value`` if it is an executor instance or a known short name, else
    :class:`BadExecutor` naming it."""
    from covalent.executor.base import _AbstractBaseExecutor

    if isinstance(value, _AbstractBaseExecutor):
        return value
    if isinstance(value, str):
        known = short_names()
        if value in known:
            return value
        raise BadExecutor(
            f"the executor fixture gave {value!r}, which is not the short name of any "
            f"executor plugin this session loads (it knows {', '.join(known)}): install "
            "the plugin, or name its folder with covalent_executor_dir; see "
            "docs/how-to/create-custom-executor.md#the-plugin-is-not-found"
        )
    raise BadExecutor(
        f"the executor fixture gave {value!r} (a {type(value).__name__}), which is "
        "neither an executor instance (a covalent.executor.base.BaseExecutor or "
        "AsyncBaseExecutor) nor a short name"
    )


def described(error: BaseException) -> str:
    """The message for an ``executor`` fixture that raised ``error``."""
    return (
        f"the executor fixture raised {type(error).__name__}: {error} "
        "(building the executor failed before any case could run)"
    )
