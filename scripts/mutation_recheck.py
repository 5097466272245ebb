"""Reruns the surviving mutants of ``scripts/mutation_test.sh`` against the current tests.

  PATH=~/venvs/mut/bin:$PATH python scripts/mutation_recheck.py ~/runs/mutation [MODULE ...]
      [--silent_kills_only]

(Python >= 3.11.) Without MODULE names, every finished session is rechecked.

A session mutates the commit it was started on; tests written since (to kill its
survivors) are not in that clone. This script clones the repository's HEAD into
``WORKDIR/recheck-src``, and for every survivor in ``WORKDIR/sessions/<name>.jsonl``
applies the same mutation (``cosmic-ray apply``; if the module changed since the
session's commit, the diff's one-line change where that line occurs exactly once),
runs that module's test command from
``WORKDIR/sessions/<name>.toml`` and records killed or survived in
``WORKDIR/sessions/<name>.recheck.json``, which ``mutation_report.py`` reads. Kills
without pytest output (the test process died: a crash, a signal) are rerun the same
way, and ``--silent_kills_only`` reruns only those; a mutant that is no longer valid
Python (``compile`` fails) is recorded as incompetent, not run.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys

import tomllib

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import mutation_report

REPO = pathlib.Path(__file__).resolve().parents[1]


def git(*args, cwd) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def apply_line_change(path: pathlib.Path, diff: str) -> bool:
    """Applies a one-line mutation by its text: the diff's removed line (stripped) is
    replaced by its added line, keeping the indentation. False (nothing written)
    unless the removed line occurs exactly once in ``path``."""
    removed, added = mutation_report.changed_lines(diff)
    lines = path.read_text().splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.strip() == removed]
    if not removed or len(hits) != 1:
        return False
    line = lines[hits[0]]
    indent = line[: len(line) - len(line.lstrip())]
    lines[hits[0]] = indent + added + "\n"
    path.write_text("".join(lines))
    return True


def recheck(
    workdir: pathlib.Path, name: str, src: pathlib.Path, silent_only: bool = False
) -> dict:
    config = tomllib.loads((workdir / "sessions" / f"{name}.toml").read_text())
    settings = config["cosmic-ray"]
    module = settings["module-path"]
    session_commit = git("rev-parse", "HEAD", cwd=workdir / "src")
    changed = git("diff", "--name-only", session_commit, "HEAD", "--", module, cwd=src)
    command = settings["test-command"].replace(str(workdir / "src"), str(src))
    if " -n 0 " not in command:  # one process per mutant (no pytest-xdist workers)
        command = command.replace(" -m pytest ", " -m pytest -n 0 ")
    pairs = mutation_report.load_session(workdir / "sessions" / f"{name}.jsonl")
    outcomes = {}
    for item, result in pairs:
        survived = mutation_report.outcome(result) == "survived"
        if not ((survived and not silent_only) or mutation_report.silent_kill(result)):
            continue
        (mutation,) = item["mutations"]
        key = f"{mutation['operator_name']}:{mutation['occurrence']}"
        if changed:  # occurrences may have moved: apply the diff's line change
            if not apply_line_change(src / module, result.get("diff", "")):
                print(f"{name} {key}: its line is gone or not unique; not rechecked")
                continue
        else:
            subprocess.run(
                [
                    "cosmic-ray",
                    "apply",
                    module,
                    mutation["operator_name"],
                    str(mutation["occurrence"]),
                ],
                cwd=src,
                check=True,
            )
        try:
            compile((src / module).read_text(), module, "exec")
            done = subprocess.run(
                shlex.split(command),
                check=False,
                cwd=src,
                capture_output=True,
                timeout=int(settings.get("timeout", 300)),
                env={**os.environ, "PYTHONPATH": str(src)},
            )
            outcomes[key] = "killed" if done.returncode else "survived"
        except SyntaxError:  # not Python (e.g. "*," -> "+,"): no test can judge it
            outcomes[key] = "incompetent"
        except subprocess.TimeoutExpired:  # not a detection: counted as surviving
            outcomes[key] = "timeout"
        finally:
            git("checkout", "--quiet", "--", ".", cwd=src)
        print(f"{name} {key}: {outcomes[key]}", flush=True)
    return outcomes


def main(workdir: str, names: list[str], silent_only: bool = False) -> None:
    root = pathlib.Path(workdir).expanduser()
    src = root / "recheck-src"
    if not (src / ".git").is_dir():
        git("clone", "--quiet", str(REPO), str(src), cwd=root)
    git("fetch", "--quiet", str(REPO), "HEAD", cwd=src)
    git("checkout", "--quiet", "--force", "FETCH_HEAD", cwd=src)
    for path in sorted((root / "sessions").glob("*.jsonl")):
        if names and path.stem not in names:
            continue
        saved = path.with_suffix(".recheck.json")
        earlier = json.loads(saved.read_text()) if saved.is_file() else {}
        # a mutant not rechecked this time keeps its earlier recheck's outcome
        outcomes = {**earlier, **recheck(root, path.stem, src, silent_only)}
        saved.write_text(json.dumps(outcomes, indent=1))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--silent_kills_only"]
    main(
        args[0] if args else "~/runs/mutation", args[1:], len(args) < len(sys.argv) - 1
    )
