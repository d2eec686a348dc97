"""Sphinx configuration: ``sphinx-build -c conf docs build/html`` (see ``tox -e docs``).

The doctest build (``-b doctest``) runs every example against a real Covalent
server that this file starts and stops. Covalent reads its configuration when it
is first imported, so this process is pointed at an isolated home folder before
anything (autodoc, an example) imports it.
"""

import atexit
import inspect
import os
import sys
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sphinx.ext.autodoc.preserve_defaults import update_defvalue

# sphinx-autodoc-typehints 3.6.1 (the newest) still calls an API Sphinx 9 deprecates; the
# notice is about that package, not these docs, and would print once per docstring.
warnings.filterwarnings(
    "ignore", message=r"'sphinx_autodoc_typehints\._parser\..*' is deprecated", module="sphinx"
)

CONF_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONF_DIR.parent
sys.path[:0] = [str(CONF_DIR), str(REPO_ROOT)]

from covalent_plugin_testing.dask_cluster import running_dask_cluster  # noqa: E402
from covalent_plugin_testing.s3_server import running_s3_server  # noqa: E402
from covalent_plugin_testing.server import isolate_in_temporary_home, running_server  # noqa: E402
from covalent_plugin_testing.slurm_cluster import running_slurm_cluster  # noqa: E402
from covalent_plugin_testing.slurm_rest import rest_config, running_slurm_rest  # noqa: E402
from covalent_plugin_testing.ssh_server import running_ssh_server  # noqa: E402

DOCS_HOME, DOCS_PORT = isolate_in_temporary_home("timing-executor-docs-")
#: The example plugins the pages load from a plugin folder (small_timing, doubling,
#: call_log). The server and this process (the examples' client) both read the
#: variable: the folder covalent.conf names depends on which of them wrote it first.
EXAMPLE_PLUGINS = REPO_ROOT / "docs_src" / "plugins"
os.environ["COVALENT_EXECUTOR_DIR"] = str(EXAMPLE_PLUGINS)

project = "timing-executor"
author = "timing-executor contributors"
copyright = "timing-executor contributors"
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "parallel_doctest",
    "sphinx.ext.intersphinx",
    "sphinx_autodoc_typehints",
    "sphinx_copybutton",
    "scorecard_table",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "timing-executor"

# The Python inventory is Debian's python3.11-doc objects.inv, shipped in conf/:
# the build never fetches one.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", str(CONF_DIR / "python-objects.inv")),
}

nitpicky = True
# Covalent and asyncssh publish no inventory that could be shipped here: their names stay
# plain text.
nitpick_ignore_regex = [(r"py:.*", r"(covalent|asyncssh)(\..*)?")]
# Type hints name Future by the module that defines it; the inventory knows its public name.
# Dask's inventory is not shipped here either: its Client stays plain text.
nitpick_ignore = [
    ("py:class", "concurrent.futures._base.Future"),
    ("py:class", "distributed.client.Client"),
]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
typehints_defaults = "comma"
# Signatures show defaults as the source writes them (DEFAULT_TIMING_FILEPATH), not
# as the path they have in the process that builds these pages.
autodoc_preserve_defaults = True
napoleon_numpy_docstring = False

# sphinx-copybutton: in a block with prompts ($, >>>, ...) only the prompted lines are
# copied, without their prompts, so output and tracebacks stay behind.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True

#: One stack per server (Covalent, Dask, sshd, Slurm with its REST API, S3), so they
#: start and stop side by side.
_servers = [ExitStack() for _ in range(5)]
for _stack in _servers:
    atexit.register(_stack.close)


_starting = ThreadPoolExecutor(max_workers=len(_servers), thread_name_prefix="docs-servers")
_started: list[Future] = []


def _start_servers_for_doctest(app) -> None:
    """For ``-b doctest`` only, start in the background, while Sphinx reads the pages,
    the Covalent server the examples dispatch to, a Dask scheduler with two workers of
    two threads, an sshd, a single-node Slurm with its REST API and an S3 store;
    :func:`_servers_ready` says when they are up."""
    if app.builder.name == "doctest":
        servers = (
            running_server(DOCS_HOME, DOCS_PORT),
            running_dask_cluster(DOCS_HOME / "dask", nanny=False),
            running_ssh_server(DOCS_HOME / "sshd"),
            _slurm_with_rest(DOCS_HOME / "slurm"),
            running_s3_server(DOCS_HOME / "s3"),
        )
        _started.extend(
            _starting.submit(stack.enter_context, cm)
            for stack, cm in zip(_servers, servers, strict=True)
        )


@contextmanager
def _slurm_with_rest(folder: Path):
    """The pages' Slurm, and its REST API for the batch_timing examples."""
    extra = rest_config(folder)
    with (
        running_slurm_cluster(folder, memory_limits=True, extra_config=extra) as slurm,
        running_slurm_rest(slurm) as rest,
    ):
        yield slurm, rest


def _servers_ready(app, wait: bool) -> bool:
    """Whether the first page's examples may run (``parallel-doctest-ready``, asked
    while Sphinx still reads the other pages; with ``wait``, once it has read them
    all): the servers are up; the Dask examples find the scheduler in
    ``DASK_SCHEDULER_ADDRESS`` (Dask's own setting; they fall back to ``dask
    scheduler``'s default port); ``[executors.ssh_timing]``,
    ``[executors.slurm_timing]`` and ``[executors.batch_timing]`` of covalent.conf
    name the build's sshd, Slurm and S3 store, as the pages show a reader's; and
    ``ct.get_result(wait=True)`` polls every :data:`RESULT_POLL_SECONDS` rather than
    every second."""
    if not wait and not all(future.done() for future in _started):
        return False
    if _started:
        _, cluster, sshd, (slurm, rest), s3 = (future.result() for future in _started)
        os.environ["DASK_SCHEDULER_ADDRESS"] = cluster.address
        _configure_remote_executors(sshd, slurm)
        _configure_batch_executor(rest, s3)
        _poll_results_quickly()
    return True


def _configure_remote_executors(sshd, slurm) -> None:
    """Write the sections a reader writes for their own machine and cluster, with the
    values of the build's: both the server (which reads covalent.conf for every task)
    and the examples' client see them."""
    import covalent as ct

    login = {
        "hostname": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "ssh_key_file": sshd.key_file,
        "known_hosts": sshd.known_hosts,
    }
    ssh_timing = login | {
        "python_path": sys.executable,
        "remote_workdir": str(sshd.home / "covalent-workdir"),
    }
    slurm_timing = {
        "python_path": sys.executable,
        "remote_workdir": str(DOCS_HOME / "slurm-workdir"),
        "slurm_conf": str(slurm.conf),
        "poll_freq": 0.5,
    }
    settings = {f"executors.ssh_timing.{key}": value for key, value in ssh_timing.items()}
    settings |= {f"executors.slurm_timing.{key}": value for key, value in slurm_timing.items()}
    ct.set_config(settings)


def _configure_batch_executor(rest, s3) -> None:
    """``[executors.batch_timing]`` for the build's slurmrestd and S3 store, with the
    token in a file and the store's keys in a profile of the server's AWS
    credentials (the server's home is the build's), as a reader keeps theirs."""
    import covalent as ct

    token_file = DOCS_HOME / "slurm-token"
    token_file.write_text(rest.token + "\n")
    aws = DOCS_HOME / ".aws"
    aws.mkdir(exist_ok=True)
    (aws / "credentials").write_text(
        f"[docs-s3]\naws_access_key_id = {s3.access_key}\n"
        f"aws_secret_access_key = {s3.secret_key}\n"
    )
    job_folders = DOCS_HOME / "batch-jobs"
    job_folders.mkdir(exist_ok=True)
    batch_timing = {
        "rest_url": rest.url,
        "rest_user": rest.user,
        "token_file": str(token_file),
        "bucket": s3.new_bucket("covalent-tasks-"),
        "s3_endpoint_url": s3.endpoint_url,
        "s3_region": s3.region,
        "aws_profile": "docs-s3",
        "python_path": sys.executable,
        "poll_freq": 0.5,
    }
    settings = {f"executors.batch_timing.{key}": value for key, value in batch_timing.items()}
    # The jobs run on this machine: their folders go in the build's home.
    settings["executors.batch_timing.env"] = {"TMPDIR": str(job_folders)}
    ct.set_config(settings)


#: How often a waiting example asks the server whether its dispatch has finished. Each
#: question costs the server about 4 ms of CPU time, and the pages' examples wait side
#: by side: polling every 0.05 s cost the build more than it saved.
RESULT_POLL_SECONDS = 0.25


def _poll_results_quickly() -> None:
    """Wait for a dispatch by polling its status every :data:`RESULT_POLL_SECONDS`, then
    let Covalent's own ``wait=True`` find it finished: its one-second poll would add
    half a second, on average, to every example that waits for a result."""
    import time

    from covalent._results_manager import results_manager
    from covalent._shared_files.util_classes import RESULT_STATUS, Status
    from covalent._shared_files.utils import format_server_url

    fetch = results_manager.ResultManager.from_dispatch_id

    def from_dispatch_id(dispatch_id, results_dir, wait=False, dispatcher_addr=None):
        if wait:
            client = results_manager.CovalentAPIClient(
                dispatcher_addr or format_server_url(), auto_raise=False
            )
            status = results_manager._query_dispatch_status
            while not RESULT_STATUS.is_terminal(Status(status(dispatch_id, client))):
                time.sleep(RESULT_POLL_SECONDS)
        return fetch(dispatch_id, results_dir, wait, dispatcher_addr)

    results_manager.ResultManager.from_dispatch_id = staticmethod(from_dispatch_id)


def _stop_servers(app, exception) -> None:
    for closing in [_starting.submit(stack.close) for stack in _servers]:
        closing.result()


def _preserve_defaults_of_wrapped(app, obj, bound_method: bool) -> None:
    """Give a decorated function's original the defaults as its source writes them too.

    autodoc_preserve_defaults rewrites the signature of the object autodoc documents
    (for the executors, the ``__init__`` that ``empty_means_default`` wraps), but
    sphinx-autodoc-typehints draws the signature of ``inspect.unwrap(obj)``.
    """
    wrapped = inspect.unwrap(obj) if callable(obj) else obj
    if wrapped is not obj:
        update_defvalue(app, wrapped, bound_method)


def setup(app) -> None:
    app.connect("autodoc-before-process-signature", _preserve_defaults_of_wrapped)
    app.connect("builder-inited", _start_servers_for_doctest)
    app.connect("parallel-doctest-ready", _servers_ready)
    app.connect("build-finished", _stop_servers)
