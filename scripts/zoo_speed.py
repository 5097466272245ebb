"""Whole-process training time of vae_jax against Pythae, measured side by side.

  nice -n 5 python scripts/zoo_speed.py --workdir ~/runs/zoo_speed \
      --pythae_python ~/venvs/torch/bin/python [--models vae iwae vqvae] [--rounds 3]

Each round runs, for every model, one zoo-benchmark configuration per library
(``scripts/zoo_benchmark.py --dataset D --model M --library L``: same MLP, data,
optimizer and epochs), each in a fresh process, the libraries' order alternating
from round to round so that a slow spell of the machine hits both. The time is the
process's wall time from its start to the end of training (imports, data loading
and compilation included). Scores after training are cut to a minimum here. Writes
``speed.md`` and ``speed.json`` (per-round times, medians, the ratio of medians);
finished configurations are kept, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve()
LIBRARIES = ("vae_jax", "pythae")


def order(round_index: int) -> tuple[str, ...]:
    """The libraries' order in round ``round_index``: vae_jax first in even rounds."""
    return LIBRARIES if round_index % 2 == 0 else LIBRARIES[::-1]


def summarise(times: dict[str, dict[str, list[float]]]) -> list[dict]:
    """{model: {library: [seconds per round]}} -> a row per model: the medians and
    Pythae's median over vae_jax's (the speed-up)."""
    rows = []
    for model, by_library in times.items():
        ours = statistics.median(by_library["vae_jax"])
        theirs = statistics.median(by_library["pythae"])
        rows.append(
            {
                "model": model,
                "rounds": len(by_library["vae_jax"]),
                "vae_jax_median_s": ours,
                "pythae_median_s": theirs,
                "speed_up": theirs / ours,
                "vae_jax_s": by_library["vae_jax"],
                "pythae_s": by_library["pythae"],
            }
        )
    return rows


def run_config(args, round_index: int, model: str, library: str) -> float:
    """One configuration's process (skipped when its result exists) -> seconds."""
    workdir = args.workdir / f"round_{round_index}"
    prefix = "" if library == "vae_jax" else "pythae_"
    result = workdir / args.dataset / f"{prefix}{model}" / "result.json"
    if not result.is_file():
        command = [sys.executable, str(HERE.with_name("zoo_benchmark.py"))]
        command += ["--workdir", str(workdir), "--dataset", args.dataset]
        command += ["--model", model, "--library", library]
        command += ["--epochs", str(args.epochs), "--pythae_python", args.pythae_python]
        command += ["--nll_samples", "2", "--nll_examples", "10"]
        command += ["--pythae_nll_examples", "0"]
        command += ["--quality_samples", "100", "--classifier_steps", "100"]
        command += ["--gmm_examples", "1000"]
        subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.read_text())["train_wall_seconds"]


def markdown(rows: list[dict], args) -> str:
    lines = [
        (
            f"# Training time, {args.dataset}, {args.epochs} epochs (medians of "
            f"{args.rounds} alternated rounds, whole process to the end of training)"
        ),
        "",
        "| model | vae_jax s | Pythae s | speed-up | vae_jax per round | Pythae per round |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = lambda v: " ".join(f"{x:.1f}" for x in v)
        lines.append(
            f"| {r['model']} | {r['vae_jax_median_s']:.1f} | {r['pythae_median_s']:.1f}"
            f" | {r['speed_up']:.2f}x | {per(r['vae_jax_s'])} | {per(r['pythae_s'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=pathlib.Path, required=True)
    parser.add_argument("--pythae_python", required=True, help="with torch, pythae")
    parser.add_argument("--models", nargs="+", default=["vae", "iwae", "vqvae"])
    parser.add_argument(
        "--dataset", default="mnist", choices=["mnist", "fashion_mnist"]
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    args.workdir = args.workdir.expanduser().resolve()
    times = {m: {lib: [] for lib in LIBRARIES} for m in args.models}
    for round_index in range(args.rounds):
        for model in args.models:
            for library in order(round_index):
                seconds = run_config(args, round_index, model, library)
                times[model][library].append(seconds)
                print(
                    f"round {round_index} {model} {library}: {seconds:.1f} s",
                    flush=True,
                )
    rows = summarise(times)
    (args.workdir / "speed.json").write_text(json.dumps(rows, indent=1))
    text = markdown(rows, args)
    (args.workdir / "speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
