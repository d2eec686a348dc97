"""``run_local``, which runs the Slurm executor's commands on the server's machine:
what a command reads, writes and exits with, and that a process forked from the
server meanwhile cannot hold a command back."""

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.forking import forking_meanwhile
from timing_executor.server_side.shells import CommandResult, run_local


def test_a_command_gets_its_input_and_gives_back_its_output_and_status():
    done = run_local("cat; echo said >&2; pwd; exit 3", input=b"read\n")
    assert done == CommandResult(3, f"read\n{Path.home()}\n".encode(), b"said\n")
    assert run_local("cat").stdout == b""  # no input: an empty stdin, not this one's


def test_a_command_killed_by_a_signal_says_which():
    assert run_local("kill -TERM $$").status == -signal.SIGTERM


def test_processes_forked_meanwhile_do_not_hold_commands_back():
    """A process forked from this one (as Covalent's ``local`` forks its pool
    workers) keeps a copy of every file this one holds open at that moment. A
    command must end when it exits all the same: waiting for the end of a pipe
    that such a copy holds open, ``subprocess.run`` hung."""
    with ThreadPoolExecutor(1) as pool, forking_meanwhile():
        for _ in range(50):
            done = pool.submit(run_local, "echo hi").result(timeout=20)
            assert done.stdout == b"hi\n"
