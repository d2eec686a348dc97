"""The code that runs in the Covalent server, shared by the executors.

Starting and talking to a launcher (:mod:`.launchers`), one task's run and how it
ended (:mod:`.task_runs`), turning that end into Covalent's result
(:mod:`.reporting`), the records appended on the server (:mod:`.records`), the
``""``-means-default decorator (:mod:`.defaults`), and, for the remote executors,
commands on the server's machine or over SSH (:mod:`.shells`,
:mod:`.ssh_connection`), and Slurm's job scripts, jobs and leases
(:mod:`.slurm_job_scripts`, :mod:`.slurm_jobs`, :mod:`.slurm_leases`), and for
``batch_timing`` the bucket, Slurm's REST API and what a stopped server left there
(:mod:`.object_store`, :mod:`.slurm_rest_api`, :mod:`.batch_orphans`).

None of it is sent to where tasks run; it may import the task side
(:mod:`timing_executor.task_side`), never the other way round.
"""
