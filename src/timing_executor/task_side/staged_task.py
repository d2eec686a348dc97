"""What a batch job runs when it shares no folder with the server: it fetches its
task from one URL, runs it under the supervisor of every executor here, and leaves
each file of the task's outcome at a URL of its own.

The job gets nothing else: no credentials, no bucket name, only presigned URLs,
each good for one operation on one object (read ``task.pkl``; write ``ended.json``,
``outcome.pkl``, ``stdout`` or ``stderr``) until it expires. It runs in the job's
Python, sent there by value, and needs only the standard library there, besides
what the task needs.
"""

import os
import signal
import time
import urllib.error
import urllib.request

from timing_executor.task_side.supervisor import supervise_task

#: The files a task's supervisor leaves, each uploaded if it is there.
OUTCOME_FILES = ("ended.json", "outcome.pkl", "stdout", "stderr")
#: Attempts of each download or upload, and the first pause between two (doubled
#: after each): an object store that restarts has about 30 s to come back.
TRANSFER_ATTEMPTS, FIRST_PAUSE_SECONDS = 6, 1.0
TRANSFER_TIMEOUT_SECONDS = 60


def run_staged_task(task_url: str, outcome_urls: dict[str, str]) -> None:
    """Fetch the task into this folder, run it supervised, upload its outcome.

    A cancel (``SIGTERM`` to every process of the job) stops the task through its
    supervisor; this process lets it pass, so that what the task printed still
    reaches the server before Slurm's ``KillWait`` ends the job.
    """
    folder = os.getcwd()
    transfer("GET", task_url, os.path.join(folder, "task.pkl"))
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    supervisor = os.fork()
    if supervisor == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        supervise_task(folder)  # never returns
    os.waitpid(supervisor, 0)
    for name in OUTCOME_FILES:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            transfer("PUT", outcome_urls[name], path)


def transfer(method: str, url: str, path: str) -> None:
    """Download ``url`` to ``path`` (``GET``) or upload ``path`` to it (``PUT``),
    trying again after a refused connection or a 5xx answer."""
    pause = FIRST_PAUSE_SECONDS
    for attempt in range(1, TRANSFER_ATTEMPTS + 1):
        try:
            if method == "GET":
                answer = urllib.request.urlopen(
                    url, timeout=TRANSFER_TIMEOUT_SECONDS
                )
                with answer, open(path, "wb") as file:
                    while chunk := answer.read(1 << 20):
                        file.write(chunk)
            else:
                with open(path, "rb") as file:
                    size = os.fstat(file.fileno()).st_size
                    request = urllib.request.Request(
                        url,
                        data=file,
                        method="PUT",
                        headers={"Content-Length": str(size)},
                    )
                    urllib.request.urlopen(
                        request, timeout=TRANSFER_TIMEOUT_SECONDS
                    ).close()
            return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == TRANSFER_ATTEMPTS:
                raise RuntimeError(
                    f"{method} {url.split('?')[0]}: HTTP {error.code} "
                    f"{error.read()[:300]!r}"
                ) from None
        except OSError:
            if attempt == TRANSFER_ATTEMPTS:
                raise
        time.sleep(pause)
        pause *= 2
