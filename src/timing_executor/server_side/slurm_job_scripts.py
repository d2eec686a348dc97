"""The batch job of one task: its ``#SBATCH`` lines and the script that starts
the task's supervisor, which comes in the script by value."""

import base64
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import cloudpickle

from timing_executor import task_side
from timing_executor.server_side.ssh_connection import (
    covalent_folders,
    remote_quote,
)
from timing_executor.task_side.boot import (
    LAUNCHER_BOOT,
    boot_message,
    runtime_versions,
)
from timing_executor.task_side.supervisor import supervise_task

# The supervisor that runs the task goes to the compute node by value.
cloudpickle.register_pickle_by_value(task_side)


# --8<-- [start:job-script]
#: Options the executor sets itself (``--error``: none, so that the job's errors
#: and Slurm's words are in its output file), which ``options`` may not set.
OWN_OPTIONS = ("chdir", "output", "error", "parsable")
#: The job's own Covalent folders, in its task's folder (the job's --chdir).
CONFIG_FOLDER = '"$PWD/covalent-config"'
#: The submitter's variables that would override the job script's own lines
#: (``sbatch`` reads ``SBATCH_*`` variables over ``#SBATCH`` lines), unset for
#: ``sbatch``: they would take the job's output out of its folder.
UNSET_FOR_SBATCH = ("SBATCH_OUTPUT", "SBATCH_ERROR")


def sbatch_lines(options: dict[str, Any]) -> list[str]:
    """``#SBATCH`` lines for ``options``: ``{"time": "10:00"}`` gives
    ``#SBATCH --time=10:00``; a value of ``True`` or ``""`` a bare flag."""
    lines = []
    for name, value in options.items():
        if name.lstrip("-") in OWN_OPTIONS:
            raise ValueError(
                f"options may not set {name!r}: the executor gives each job "
                "--chdir (its task's folder), --output (a file there, which holds "
                "the job's errors too) and --parsable."
            )
        if value is False or value is None:
            continue
        flag = "--" + name.lstrip("-")
        if value is True or value == "":  # not 1, which equals True
            lines.append(f"#SBATCH {flag}")
        else:
            lines.append(f"#SBATCH {flag}={sbatch_value(name, value)}")
    return lines


def sbatch_value(name: str, value: Any) -> str:
    """``value`` as sbatch reads it in an ``#SBATCH`` line: in double quotes if
    it holds a space, a quote, a backslash or ``#``, which sbatch splits or cuts."""
    text = str(value)
    if not text.isprintable():
        raise ValueError(
            f"options[{name!r}] = {value!r}: an #SBATCH line cannot hold a line "
            "break or another control character; give the value on one line."
        )
    if not re.search(r"[\s\"'\\#]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class JobScript:
    """What a task's batch job runs, and how."""

    python_path: str
    options: tuple[tuple[str, Any], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    prerun_commands: tuple[str, ...] = ()
    postrun_commands: tuple[str, ...] = ()
    use_srun: bool = False

    def text(self, folder: str) -> str:
        """The script of the job that runs the task written to ``folder``.

        The server's Covalent settings (``COVALENT_*``, which ``sbatch`` passes on)
        are unset; Covalent there keeps its configuration in the task's folder,
        which goes with the folder however the job ends (a job that is killed
        never runs its last line).
        The supervisor comes in the script, pickled, so only the task is staged.
        """
        return "\n".join(
            [
                "#!/bin/bash",
                f"#SBATCH --chdir={sbatch_value('chdir', folder)}",
                f"#SBATCH --output={sbatch_value('output', folder + '/slurm.out')}",
                *sbatch_lines(dict(self.options)),
                *self.run_lines(partial(supervise_task, folder)),
                "",
            ]
        )

    def run_lines(self, runner: Callable[[], Any]) -> list[str]:
        """The lines that run ``runner`` (pickled by value into the script) in the
        job's Python, in the job's current folder, and exit with its status."""
        message = base64.b64encode(boot_message(runner))
        versions = shlex.quote(json.dumps(runtime_versions()))
        python = remote_quote(self.python_path)
        srun = "srun --ntasks=1 " if self.use_srun else ""
        # A job step gets the job's --export (NONE: nothing), not this script's
        # variables, unless SLURM_EXPORT_ENV says ALL.
        step_env = ["export SLURM_EXPORT_ENV=ALL"] if self.use_srun else []
        return [
            "unset $(compgen -e | grep '^COVALENT_')",
            f"export {covalent_folders(CONFIG_FOLDER)}",
            *(f"export {name}={shlex.quote(value)}" for name, value in self.env),
            *step_env,
            *self.prerun_commands,
            f"base64 -d <<'RUNNER' | {srun}{python} -c "
            f"{shlex.quote(LAUNCHER_BOOT)} {versions}",
            message.decode(),
            "RUNNER",
            "status=$?",
            *self.postrun_commands,
            "exit $status",
        ]


# --8<-- [end:job-script]
