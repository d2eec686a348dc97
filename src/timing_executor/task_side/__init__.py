"""The code that runs where a task runs.

The launcher's loop (:mod:`.launcher`) and the messages it reads and writes
(:mod:`.messages`), the supervisor that ends all a task leaves
(:mod:`.supervisor`), the task's own process (:mod:`.task_process`) and the
stopwatch in it (:mod:`.measuring`), and the plain-source program that starts a
launcher in a new Python after checking its versions (:mod:`.boot`).

For ``TimingExecutor`` and ``AsyncTimingExecutor`` this runs on the server's
machine, in child processes of the server; ``ssh_timing``, ``slurm_timing`` and
``dask_timing`` send it to other machines by value, as one unit
(``cloudpickle.register_pickle_by_value(timing_executor.task_side)``), so those
need Python and Covalent but not this package. So no module here imports the
server side (``timing_executor.server_side``, the executor modules, or
Covalent's server); ``tests/test_task_side.py`` checks it.
"""
