"""Randomized fault campaign against the runner: N faults on short quickstart runs,
each followed by reruns of the same command until the run finishes.

  python scripts/fault_campaign.py --workdir=~/runs/faults --faults=200

Training is deterministic, so whatever happens on the way, the finished run's
parameters and optimizer state must equal those of an uninterrupted reference run.
Each fault is one of:

  kill        SIGKILL at a random time (start-up, training, a save, evaluation)
  flip        kill, then 64 random bytes XOR-ed into a random file of a checkpoint
  truncate    kill, then a random file of a checkpoint cut at a random length
  delete      kill, then a random file of a checkpoint deleted
  disk_full   the workdir on a small tmpfs that a filler file fills at a random
              time (root only; skipped otherwise), then the filler removed
  concurrent  a second runner started on the workdir while the first trains
  changed     a rerun with another seed, then the right command

and its outcome one of:

  resumed      finished bit-identical to the reference, no warning
  fell_back    finished bit-identical after a warning (a checkpoint moved aside)
  refused      a command ended with exit 1 and one error line (no traceback),
               then the run finished bit-identical
  FAILED: silent_corruption (finished, differs from the reference), stuck (three
  reruns did not finish), traceback (a rerun died with a traceback) or
  lost_checkpoint (a finished checkpoint vanished: neither kept nor moved aside).

Writes ``campaign.json`` and ``campaign.md`` (counts per fault and outcome) to
--workdir after every fault and exits 1 if any fault FAILED. Fault i draws from its
own seeded generator, so a stopped campaign rerun with the same flags resumes after
the faults it recorded.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

from absl import app, flags

from vae_jax import checkpoint, runtime, writer

_WORKDIR = flags.DEFINE_string("workdir", None, "Where the runs and the report go.")
_FAULTS = flags.DEFINE_integer("faults", 200, "Number of faults injected.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the fault schedule.")
_STEPS = flags.DEFINE_integer("num_steps", 2000, "Steps of each run.")
_KINDS = flags.DEFINE_list(
    "kinds",
    "kill,flip,truncate,delete,disk_full,concurrent,changed",
    "Fault kinds drawn from (uniformly).",
)
flags.mark_flags_as_required(["workdir"])

QUICKSTART = (
    pathlib.Path(__file__).resolve().parents[1] / "vae_jax/configs/quickstart.py"
)
DAMAGE = ("flip", "truncate", "delete")


def command(workdir: pathlib.Path, *extra: str) -> list[str]:
    """The runner on a short quickstart run checkpointed every 100 steps."""
    return [
        sys.executable,
        "-m",
        "experiments.run",
        f"--config={QUICKSTART}",
        f"--workdir={workdir}",
        f"--config.train.num_steps={_STEPS.value}",
        "--config.train.checkpoint_every=100",
        "--config.train.log_every=100",
        "--config.train.steps_per_dispatch=50",
        "--config.train.write_figures=False",
        *extra,
    ]


def start(workdir, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        command(workdir, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def state_hash(workdir: pathlib.Path) -> str | None:
    """sha256 of the final checkpoint's arrays, or None if the run has none."""
    manager = checkpoint.make_manager(workdir / "checkpoints", 3)
    if _STEPS.value not in manager.all_steps():
        return None
    tree = manager.restore(_STEPS.value)
    digest = hashlib.sha256()
    for leaf in jax_leaves(tree):
        digest.update(memoryview(leaf).tobytes())
    return digest.hexdigest()[:16]


def jax_leaves(tree):
    import jax
    import numpy as np

    return [np.ascontiguousarray(x) for x in jax.tree.leaves(tree)]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("E")]


def checkpoint_steps(workdir: pathlib.Path) -> set[int]:
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        return set()
    return {int(p.name) for p in directory.iterdir() if p.name.isdigit()}


def moved_aside(workdir: pathlib.Path) -> set[int]:
    directory = workdir / "checkpoints_unreadable"
    if not directory.is_dir():
        return set()
    return {int(p.name.split("-")[0]) for p in directory.iterdir()}


def damage(workdir: pathlib.Path, kind: str, rng: random.Random) -> str:
    """Damages a random file of a random checkpoint; returns what it did."""
    steps = sorted(checkpoint_steps(workdir))
    if not steps:
        return "no checkpoint yet"
    step = rng.choice(steps)
    files = sorted(
        p for p in (workdir / "checkpoints" / str(step)).rglob("*") if p.is_file()
    )
    if not files:
        return f"checkpoint {step} empty"
    victim = rng.choice(files)
    raw = bytearray(victim.read_bytes())
    if kind == "flip" and raw:
        at = rng.randrange(len(raw))
        for i in range(at, min(at + 64, len(raw))):
            raw[i] ^= rng.randrange(1, 256)
        victim.write_bytes(bytes(raw))
    elif kind == "truncate":
        victim.write_bytes(bytes(raw[: rng.randrange(len(raw) + 1)]))
    else:
        victim.unlink()
    return f"{kind} {victim.relative_to(workdir)}"


class Trial:
    """One fault on a fresh workdir and the reruns that finish the run."""

    def __init__(self, root: pathlib.Path, index: int, kind: str, rng, reference, wall):
        self.dir, self.kind, self.rng = root / f"{index:03d}-{kind}", kind, rng
        self.reference, self.wall = reference, wall
        self.refused = self.warned = False
        self.detail, self.failure = "", ""
        self.seen: set[int] = set()  # checkpoints that existed at some point

    def note_checkpoints(self):
        self.seen |= checkpoint_steps(self.dir)

    def kill_at_random(self, *extra):
        proc = start(self.dir, *extra)
        deadline = time.monotonic() + self.rng.uniform(0.5, self.wall)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            self.note_checkpoints()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        finish(proc)
        self.note_checkpoints()

    def check_exit(self, code: int, stderr: str) -> bool:
        """True if the command finished; records a refusal or a failure otherwise."""
        if "Traceback" in stderr:
            self.failure = "traceback"
            self.detail += " | " + stderr[-600:]
            return False
        if "unreadable" in stderr or "moved to" in stderr:
            self.warned = True
        if code == 0:
            return True
        if code == 1 and len(error_lines(stderr)) == 1:
            self.refused = True
            self.detail += (
                " | "
                + error_lines(stderr)[0][error_lines(stderr)[0].find("]") + 2 :][:160]
            )
            return False
        self.failure = "traceback"
        self.detail += f" | exit {code}: {stderr[-300:]}"
        return False

    def run_to_end(self, attempts: int = 3) -> None:
        for _ in range(attempts):
            code, stderr = finish(start(self.dir))
            self.note_checkpoints()
            if self.check_exit(code, stderr) or self.failure:
                return
        self.failure = self.failure or "stuck"

    def inject(self) -> None:
        if self.kind in ("kill",) + DAMAGE:
            self.kill_at_random()
            if self.kind in DAMAGE:
                self.detail = damage(self.dir, self.kind, self.rng)
        elif self.kind == "concurrent":
            first = start(self.dir)
            time.sleep(self.rng.uniform(0.5, 2.0))
            second = finish(start(self.dir))
            self.check_exit(*second)
            self.check_exit(*finish(first))
        elif self.kind == "changed":
            self.kill_at_random()
            if checkpoint_steps(self.dir):
                self.check_exit(*finish(start(self.dir, "--config.seed=1")))
        elif self.kind == "disk_full":
            self.disk_full()

    def disk_full(self) -> None:
        mount = self.dir.with_name(self.dir.name + "-tmpfs")
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)
        mount.mkdir(parents=True, exist_ok=True)  # left by a stopped campaign
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True
        )
        try:
            real = self.dir
            self.dir = mount / "w"
            proc = start(self.dir)
            time.sleep(self.rng.uniform(0.5, self.wall))
            filler = mount / "filler"
            try:  # fills the disk (even opening may fail: the run filled it first)
                with open(filler, "wb") as f:
                    while True:
                        f.write(b"\0" * (1 << 20))
            except OSError:
                pass
            self.check_exit(*finish(proc))
            self.note_checkpoints()
            filler.unlink(missing_ok=True)
            self.run_to_end()
            self.outcome_hash = state_hash(self.dir)
            self.lost = self.seen - checkpoint_steps(self.dir) - moved_aside(self.dir)
            shutil.copytree(self.dir, real)  # kept for inspection
        finally:
            subprocess.run(["umount", str(mount)], check=False)
            mount.rmdir()
            self.dir = real

    def outcome(self) -> str:
        if self.kind == "disk_full":
            digest, lost = self.outcome_hash, self.lost
        else:
            if not self.failure:
                self.run_to_end()
            digest = state_hash(self.dir)
            lost = self.seen - checkpoint_steps(self.dir) - moved_aside(self.dir)
        if self.failure:
            return f"FAILED: {self.failure}"
        if digest is None:
            return "FAILED: stuck"
        if digest != self.reference:
            return "FAILED: silent_corruption"
        if lost - _rotated(self.seen, checkpoint_steps(self.dir)):
            return "FAILED: lost_checkpoint"
        if self.refused:
            return "refused"
        return "fell_back" if self.warned else "resumed"


def _rotated(seen: set[int], kept: set[int]) -> set[int]:
    """Checkpoints deleted by ``keep_checkpoints`` = 3: those older than the third
    newest kept one."""
    if not kept:
        return set()
    cutoff = sorted(kept)[-min(3, len(kept))]
    return {s for s in seen if s < cutoff}


def _previous_records(root: pathlib.Path, reference: str):
    """The faults a stopped campaign with the same reference state already ran."""
    path, counts = root / "campaign.json", collections.Counter()
    if not path.exists():
        return [], counts
    records = json.loads(path.read_text())
    if records and records[0].get("reference", reference) != reference:
        return [], counts  # another setting: start over
    for record in records:
        counts[(record["kind"], record["outcome"])] += 1
    print(f"resuming after {len(records)} faults")
    return records, counts


def main(argv):
    del argv
    runtime.configure()
    root = pathlib.Path(os.path.expanduser(_WORKDIR.value))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(runtime.CACHE_ENV, str(root / "xla_cache"))
    kinds = list(_KINDS.value)
    if "disk_full" in kinds and os.geteuid() != 0:
        kinds.remove("disk_full")  # mounting a small tmpfs needs root
        print("not root: no disk_full faults")
    reference_dir = root / "reference"
    shutil.rmtree(reference_dir, ignore_errors=True)
    began = time.monotonic()
    code, stderr = finish(start(reference_dir))
    wall = time.monotonic() - began
    if code != 0:
        raise SystemExit(f"The reference run failed:\n{stderr[-2000:]}")
    reference = state_hash(reference_dir)
    (root / "reference.txt").write_text(reference)
    print(f"reference run: {wall:.1f} s, final state {reference}")
    records, counts = _previous_records(root, reference)
    for i in range(len(records), _FAULTS.value):  # resumes a stopped campaign
        rng = random.Random(f"{_SEED.value}-{i}")  # fault i's draws alone
        kind = rng.choice(kinds)
        trial = Trial(root, i, kind, rng, reference, wall)
        shutil.rmtree(trial.dir, ignore_errors=True)
        trial.inject()
        outcome = trial.outcome()
        counts[(kind, outcome)] += 1
        records.append(
            {
                "fault": i,
                "kind": kind,
                "outcome": outcome,
                "detail": trial.detail,
                "reference": reference,
            }
        )
        print(f"{i:3d} {kind:10s} {outcome:28s} {trial.detail[:150]}", flush=True)
        if not outcome.startswith("FAILED"):
            shutil.rmtree(trial.dir, ignore_errors=True)  # keep only the failures
        write_report(root, records, counts)  # after every fault: readable mid-run
    table = write_report(root, records, counts)
    print(table)
    failed = sum(n for (_, o), n in counts.items() if o.startswith("FAILED"))
    print(f"{_FAULTS.value} faults, {failed} failed")
    if failed:
        sys.exit(1)


def write_report(root: pathlib.Path, records: list, counts: collections.Counter) -> str:
    """``campaign.json`` (every fault) and ``campaign.md`` (counts per fault kind and
    outcome); returns the table."""
    outcomes = sorted({o for _, o in counts})
    table = writer.markdown_table(
        ["fault", *outcomes, "total"],
        [
            [
                k,
                *(counts[(k, o)] for o in outcomes),
                sum(counts[(k, o)] for o in outcomes),
            ]
            for k in sorted({k for k, _ in counts})
        ],
    )
    writer.write_text_atomic(root / "campaign.json", json.dumps(records, indent=1))
    writer.write_text_atomic(root / "campaign.md", table + "\n")
    return table


if __name__ == "__main__":
    app.run(main)
