"""The ``scorecard`` directive: the table of ``docs/reference/scorecard.json`` (written
by ``tox -e scorecard``), executor by case. The build fails if the cases there are
not the conformance suite's current ones, or a row lacks one: run the scorecard
again."""

import json
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

from covalent_plugin_testing.conformance import case_names

SCORECARD = Path(__file__).resolve().parent.parent / "docs" / "reference" / "scorecard.json"


def checked_scorecard(path: Path = SCORECARD) -> dict:
    """The scorecard, if its cases are the suite's; else an error saying what differs."""
    scorecard = json.loads(path.read_text())
    suite = case_names()
    problems = []
    if scorecard["cases"] != suite:
        missing = sorted(set(suite) - set(scorecard["cases"]))
        extra = sorted(set(scorecard["cases"]) - set(suite))
        problems.append(f"the suite's cases changed (new: {missing}; gone: {extra})")
    for row in scorecard["rows"]:
        if sorted(row["verdicts"]) != sorted(suite):
            problems.append(f"the row {row['name']!r} has other cases than the suite")
    if problems:
        raise ExtensionError(
            f"{path.name}: {'; '.join(problems)}. Run `tox -e scorecard` (or "
            "`tox -e scorecard -- NAME` for one row) and commit the new file."
        )
    return scorecard


def _cell(text: str) -> nodes.entry:
    return nodes.entry("", nodes.paragraph(text=text))


def _table(header: list[str], lines: list[list[str]]) -> nodes.table:
    group = nodes.tgroup(cols=len(header))
    group += [nodes.colspec(colwidth=1) for _ in header]
    group += nodes.thead("", nodes.row("", *map(_cell, header)))
    group += nodes.tbody("", *(nodes.row("", *map(_cell, line)) for line in lines))
    return nodes.table("", group)


class ScorecardDirective(SphinxDirective):
    """Cases as rows, executors as columns; each failure numbered, its reason below."""

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(SCORECARD))
        scorecard = checked_scorecard()
        rows = scorecard["rows"]
        reasons: list[str] = []
        lines = []
        for case in scorecard["cases"]:
            line = [case.removeprefix("test_").replace("_", " ")]
            for row in rows:
                said = row["verdicts"][case]
                if said == "passes":
                    line.append("✓")
                else:
                    reasons.append(f"{row['name']}, {case}: {said}")
                    line.append(f"✗ {len(reasons)}")
            lines.append(line)
        passed = [list(row["verdicts"].values()).count("passes") for row in rows]
        lines.append(["cases passed", *(f"{n} of {len(scorecard['cases'])}" for n in passed)])
        lines.append(["suite's wall seconds", *(f"{row['seconds']:.0f}" for row in rows)])
        table = _table(["case", *(row["name"] for row in rows)], lines)
        executors = nodes.bullet_list()
        for row in rows:
            built = f", commit {row['commit']}" if row.get("commit") else ""
            text = f"{row['name']}: {row['what']}, {row['version']}{built}; run {row['date']}"
            executors += nodes.list_item("", nodes.paragraph(text=text))
        numbered = nodes.enumerated_list()
        for reason in reasons:
            numbered += nodes.list_item("", nodes.paragraph(text=reason))
        machine = nodes.paragraph(
            text=f"Python {scorecard['python']}, {scorecard['cores']} cores. The executors:"
        )
        failures = nodes.paragraph(text="Why each ✗ failed (the case's own message):")
        return [table, machine, executors, failures, numbered]


def setup(app) -> dict:
    app.add_directive("scorecard", ScorecardDirective)
    return {"parallel_read_safe": True}
