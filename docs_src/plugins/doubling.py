"""A plugin that changes each task's result: it doubles it.

``function`` returns the task's value packed in a ``TransportableObject``, and
``run()`` must return one too.
"""

from covalent._workflow.transport import TransportableObject
from covalent.executor.base import BaseExecutor

executor_plugin_name = "DoublingExecutor"
_EXECUTOR_PLUGIN_DEFAULTS = {"factor": 2}


class DoublingExecutor(BaseExecutor):
    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def run(self, function, args, kwargs, task_metadata):
        output = function(*args, **kwargs)  # a TransportableObject
        return TransportableObject(output.get_deserialized() * self.factor)
