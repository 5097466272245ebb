"""Summarises the cosmic-ray sessions of ``scripts/mutation_test.sh``.

  python scripts/mutation_report.py ~/runs/mutation

Reads ``WORKDIR/sessions/<module>.jsonl`` (``cosmic-ray dump``) and writes
``WORKDIR/report.md``: per module the mutants run, killed, timed out, survived,
filtered out and still pending, the kill score (killed + timed out) / run, and every
survivor with its operator, line and diff, to be judged equivalent or not.
"""

from __future__ import annotations

import json
import pathlib
import sys


def load_session(path: pathlib.Path) -> list[tuple[dict, dict | None]]:
    """(work item, result or None) pairs of one ``cosmic-ray dump``."""
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            item, result = json.loads(line)
            pairs.append((item, result))
    return pairs


def outcome(result: dict | None) -> str:
    """killed | timeout | survived | filtered | incompetent | pending."""
    if result is None:
        return "pending"
    if result.get("worker_outcome") == "skipped":
        return "filtered"
    if result.get("worker_outcome") not in (None, "normal"):
        return "incompetent"  # the mutant did not even import or run
    if result.get("test_outcome") == "killed":
        return "timeout" if result.get("output") == "timeout" else "killed"
    return "survived" if result.get("test_outcome") == "survived" else "incompetent"


def summarise(sessions: dict[str, list]) -> tuple[list[str], list[str]]:
    """(table rows, survivor sections) of the report."""
    rows, survivors = [], []
    totals = dict.fromkeys(
        ("killed", "timeout", "survived", "filtered", "incompetent", "pending"), 0
    )
    for name, pairs in sessions.items():
        counts = dict.fromkeys(totals, 0)
        for item, result in pairs:
            kind = outcome(result)
            counts[kind] += 1
            if kind == "survived":
                (mutation,) = item["mutations"]
                line = mutation["start_pos"][0]
                diff = (result or {}).get("diff", "").strip()
                survivors.append(
                    f"### {name}:{line} `{mutation['operator_name']}` "
                    f"(occurrence {mutation['occurrence']})\n\n```diff\n{diff}\n```\n"
                )
        for key in totals:
            totals[key] += counts[key]
        rows.append(_row(name, counts))
    rows.append(_row("**all**", totals))
    return rows, survivors


def _row(name: str, c: dict[str, int]) -> str:
    run = c["killed"] + c["timeout"] + c["survived"]
    score = f"{100 * (c['killed'] + c['timeout']) / run:.1f}%" if run else "-"
    cells = [name, run, c["killed"], c["timeout"], c["survived"], score]
    cells += [c["incompetent"], c["filtered"], c["pending"]]
    return "| " + " | ".join(str(x) for x in cells) + " |"


def main(workdir: str) -> None:
    root = pathlib.Path(workdir).expanduser()
    sessions = {
        path.stem: load_session(path)
        for path in sorted((root / "sessions").glob("*.jsonl"))
    }
    rows, survivors = summarise(sessions)
    header = (
        "| module | run | killed | timed out | survived | score | incompetent "
        "| filtered | pending |\n|---|---|---|---|---|---|---|---|---|"
    )
    text = "\n".join(["# Mutation testing", "", header, *rows, "", "## Survivors", ""])
    text += "\n".join(survivors) if survivors else "None.\n"
    (root / "report.md").write_text(text)
    print("\n".join([header, *rows]))
    print(f"{len(survivors)} survivors; report: {root / 'report.md'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "~/runs/mutation")
