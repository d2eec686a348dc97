"""Defaults in ``covalent.conf``: an argument given as ``""`` means the plugin's
default."""

# --8<-- [start:defaults]
import functools
import inspect
from collections.abc import Callable
from typing import Any


def empty_means_default(defaults: dict[str, Any]) -> Callable[[type], type]:
    """A class decorator: an argument given as ``""`` gets its value from
    ``defaults`` (the plugin's ``_EXECUTOR_PLUGIN_DEFAULTS``) instead.

    In ``covalent.conf``, a key set to ``""`` means "the default" to Covalent, but
    Covalent writes the default back only when a process imports ``covalent``; until
    then a running server passes ``""`` to ``__init__`` for every task.
    """

    def decorate(cls: type) -> type:
        init = cls.__init__
        signature = inspect.signature(init)

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            given = signature.bind(self, *args, **kwargs)
            for name, value in given.arguments.items():
                if isinstance(value, str) and not value and name in defaults:
                    given.arguments[name] = defaults[name]
            init(*given.args, **given.kwargs)

        cls.__init__ = __init__
        return cls

    return decorate


# --8<-- [end:defaults]
