"""The ``timing-executor`` command: ``timing-executor report PATH`` and its options,
and ``timing-executor new-plugin NAME``, which makes a plugin project
(:mod:`covalent_plugin_testing.new_plugin`).

It reads record files (or writes a project's files) only, so it does not import
Covalent: it starts quickly and never writes Covalent's configuration.

Exit status: 0 when the report was written; 1 when the file cannot be read,
holds no records, has no (or more than one) dispatch matching an id, or the plot
cannot be drawn; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from timing_report import render
from timing_report.config import DEFAULT_TIMING_FILEPATH, default_records_file
from timing_report.plot import PlotUnavailableError, plot_comparison
from timing_report.report import Collected, UnknownDispatchError, collect, compare, find_dispatch

PROGRAM = "timing-executor"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Read the records of TimingExecutor and its siblings, or make a new plugin project."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = commands.add_parser(
        "report",
        help="summarize a record file per dispatch, or compare two dispatches",
        description=(
            "Print, per dispatch, each node's CPU seconds and, where recorded, wall seconds, "
            "CPU/wall and status, with totals. Reads text and JSON Lines records, mixed or not; "
            "other lines are skipped and counted in one warning."
        ),
    )
    report.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help=(
            "record file (default: [executors.timing] timing_filepath in covalent.conf, "
            f"else {DEFAULT_TIMING_FILEPATH})"
        ),
    )
    which = report.add_mutually_exclusive_group()
    which.add_argument(
        "--dispatch", metavar="ID", help="only this dispatch (a unique prefix of its id is enough)"
    )
    which.add_argument(
        "--compare",
        nargs=2,
        metavar=("ID_A", "ID_B"),
        help="compare two dispatches node by node: B - A and B / A",
    )
    report.add_argument(
        "--format",
        choices=render.FORMATS,
        default="table",
        help="tables for people (default), or JSON or CSV for programs",
    )
    report.add_argument(
        "--plot",
        metavar="FILE.png",
        help="with --compare, also save a bar chart per node (needs timing-executor[plot])",
    )
    new_plugin = commands.add_parser(
        "new-plugin",
        help="make a new executor plugin project that passes the conformance suite",
        description=(
            "Make a plugin project: pyproject.toml with the entry point, the executor "
            "module (TimingExecutor under the new name), tests that run the conformance "
            "suite on a real Covalent server, tox.ini and .ci/run."
        ),
    )
    new_plugin.add_argument("name", metavar="NAME", help="the short name, such as my_executor")
    new_plugin.add_argument(
        "folder",
        nargs="?",
        metavar="FOLDER",
        help="a new folder for the project (default: covalent-NAME-plugin, - for _)",
    )
    return parser


def new_plugin(args: argparse.Namespace) -> int:
    from covalent_plugin_testing.new_plugin import write_project

    try:
        made = write_project(args.name, args.folder)
    except (ValueError, FileExistsError) as error:
        print(f"{PROGRAM} new-plugin: {error}", file=sys.stderr)
        return 2
    print(f"made {made}: cd there, pip install -e '.[test]', then pytest")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "new-plugin":
        return new_plugin(args)
    if args.plot and not args.compare:
        parser.error("--plot draws a comparison: use it with --compare ID_A ID_B")
    try:
        return report(args)
    except BrokenPipeError:
        # The reader stopped reading (`| head`): say nothing more, and write nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (OSError, UnknownDispatchError, PlotUnavailableError) as error:
        print(f"{PROGRAM} report: error: {_describe(error)}", file=sys.stderr)
        return 1


def report(args: argparse.Namespace) -> int:
    if args.path is None:
        args.path, source = default_records_file()
        print(f"{PROGRAM} report: reading {args.path} ({source})", file=sys.stderr)
    wanted = args.compare or ([args.dispatch] if args.dispatch else [])
    collected = collect(args.path, (lambda d: d.startswith(tuple(wanted))) if wanted else None)
    _warn(collected)
    if not wanted and not collected.dispatches:
        raise UnknownDispatchError(f"{args.path} holds no timing records")
    if args.compare:
        a, b = (find_dispatch(collected, wanted_id) for wanted_id in args.compare)
        rows = compare(a, b)
        if args.plot:
            plot_comparison(a, b, rows, args.plot)
        _write_comparison(a, b, rows, args.format, collected)
    else:
        dispatches = (
            [find_dispatch(collected, args.dispatch)]
            if args.dispatch
            else list(collected.dispatches.values())
        )
        _write_dispatches(dispatches, args.format, collected)
    return 0


def _write_dispatches(dispatches, output_format: str, collected: Collected) -> None:
    if output_format == "json":
        document = {
            "path": collected.path,
            "skipped_lines": collected.counts.skipped,
            "dispatches": [render.dispatch_fields(d) for d in dispatches],
        }
        render.write_json(document, sys.stdout)
    elif output_format == "csv":
        render.write_dispatches_csv(dispatches, sys.stdout)
    else:
        render.print_tables(map(render.dispatch_table, dispatches), sys.stdout)


def _write_comparison(a, b, rows, output_format: str, collected: Collected) -> None:
    if output_format == "json":
        document = {
            "path": collected.path,
            "skipped_lines": collected.counts.skipped,
            "a": a.dispatch_id,
            "b": b.dispatch_id,
            "nodes": [render.comparison_fields(row) for row in rows],
            "totals": {"a": render.totals_fields(a.totals), "b": render.totals_fields(b.totals)},
        }
        render.write_json(document, sys.stdout)
    elif output_format == "csv":
        render.write_comparison_csv(rows, sys.stdout)
    else:
        render.print_tables([render.comparison_table(a, b, rows)], sys.stdout)


def _warn(collected: Collected) -> None:
    counts = collected.counts
    if counts.skipped:
        print(
            f"{PROGRAM} report: warning: skipped {counts.skipped} line(s) of {collected.path} "
            f"that are not timing records (the first is line {counts.first_skipped_line})",
            file=sys.stderr,
        )
    if collected.repeated:
        print(
            f"{PROGRAM} report: note: {collected.repeated} record(s) repeat a node already "
            "recorded in the same dispatch; the last record of each node is reported",
            file=sys.stderr,
        )


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"cannot read {error.filename}: {error.strerror}"
    return str(error)
