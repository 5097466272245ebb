"""Training throughput of ``vae_mnist``: vae_jax vs PyTorch eager (and torch.compile).

Acceptance check: examples/s of the vae_mnist training loop, vae_jax over PyTorch
eager, with targets on CPU of >= 2.5x at batch 20 and >= 1.3x at batch 128.

  python scripts/benchmark.py --workdir=~/runs/benchmark
  python scripts/benchmark.py --batch_sizes=20,128 --rounds=3 --nocompile
  python scripts/benchmark.py --torch_threads=1   # on a busy machine (see below)

Contenders, alternated within every round (machines are noisy) and summarised by
their median examples/s over rounds:
  vae_jax        the library's loop: ``train.make_step_fn`` (dynamic binarization,
                 non-finite guard) fused ``steps_per_dispatch`` at a time (one
                 compiled program) by ``train.ChunkRunner`` over the device-resident set,
                 one ``jax.device_get`` of the chunk's metrics after each chunk (as
                 ``loop.train_and_evaluate`` does), ``block_until_ready`` at the end.
  torch_eager    a standard loop (``scripts/_torch_vae.py``): index a batch of a
                 preloaded tensor, ``torch.bernoulli``, forward, backward, Adam.
  torch_compile  the same with the loss and the Adam update ``torch.compile``d
                 (``--compile``, on by default; reported "unavailable" if it fails).
Each is warmed up (compiled) before timing. Every round also times a jitted float32
matmul; vae_jax's training FLOP rate is shown as a percentage of it (matmul FLOPs
counted exactly, ``train_flops_per_example``), next to the ceiling: the same
percentage for the bare matmuls of a training step at that batch size (forward, weight
and input gradients, scan-fused, plain SGD update; ``make_step_matmuls``), which no
training loop of this model can beat on the machine. A second table gives examples per CPU-second of the process (all
threads), which a busy machine disturbs less than wall-clock rates. ``--ablations``
adds vae_jax without dynamic binarization and with SGD for Adam to the rounds and
prints what share of a step those parts take. Last, ``--sweep_configs`` (8) vae_mnist
configs at B = ``--sweep_batch_size`` (20) train one chunk per round vmapped in one
program (``sweep_vmap``, as ``experiments.sweep --mode=vmap``) and one after another
(``--mode=process``), alternated; the ratio tells which mode suits the backend. On a machine
whose load exceeds its cores, OpenMP's spin-waiting can make torch's multi-threaded
eager steps 50x slower: compare with --torch_threads=1 or OMP_WAIT_POLICY=PASSIVE.
Real MNIST if found, else synthetic data (throughput does not depend on the pixel
values). Writes ``benchmark.json`` (all rounds) to --workdir. Needs torch
(``pip install torch``; not a vae_jax dependency).
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import pathlib
import statistics
import time

from absl import app, flags

_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["20", "128", "1024"], "Batch sizes B.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds per batch size.")
_STEPS = flags.DEFINE_integer(
    "steps_per_round", 0, "Steps per contender per round; 0 = about --round_seconds."
)
_ROUND_SECONDS = flags.DEFINE_float("round_seconds", 1.5, "Target seconds per block.")
_DISPATCH = flags.DEFINE_integer(
    "steps_per_dispatch", 0, "vae_jax steps per XLA call; 0 = the config's (100)."
)
_COMPILE = flags.DEFINE_bool("compile", True, "Also time torch.compile.")
_ABLATIONS = flags.DEFINE_bool(
    "ablations",
    False,
    "Also time vae_jax without dynamic binarization and with SGD for Adam (the cost "
    "of each part of a step).",
)
_THREADS = flags.DEFINE_integer("torch_threads", 0, "torch threads; 0 = all cores.")
_MATMUL = flags.DEFINE_integer("matmul_size", 2048, "Side of the reference matmul.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST directory; '' = vae_jax's search."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Writes benchmark.json here if given.")
_NLL_EXAMPLES = flags.DEFINE_integer(
    "nll_examples", 100, "Test images per round of the L_k NLL timing; 0 = skip it."
)
_SWEEP_CONFIGS = flags.DEFINE_integer(
    "sweep_configs",
    8,
    "Configs of the timed sweep (learning rate x seed), vmapped vs one after another; "
    "0 = skip it.",
)
_SWEEP_BATCH = flags.DEFINE_integer("sweep_batch_size", 20, "B of the timed sweep.")
_NLL_K = flags.DEFINE_integer("nll_samples", 5000, "k of the timed L_k (Burda et al.).")
_NLL_CHUNK = flags.DEFINE_integer("nll_chunk", 500, "Importance samples per chunk.")
_END_TO_END = flags.DEFINE_bool(
    "end_to_end",
    False,
    "Only the whole-process comparison: vae_mnist 10 epochs as fresh processes (vae_jax "
    "runner cold / warm compilation cache, Pythae, torch eager), then an 8-config "
    "process-mode sweep cold vs warm (scripts/_end_to_end.py).",
)
_TORCH_PYTHON = flags.DEFINE_string(
    "torch_python",
    None,
    "Python with torch and pythae for --end_to_end (default: this).",
)

CONTENDERS = ("vae_jax", "torch_eager", "torch_compile")
ABLATIONS = {  # contender: (config field, value, the part of a step it removes)
    "jax_no_binarize": ("data.binarize", "none", "dynamic binarization"),
    "jax_sgd": ("optim.name", "sgd", "Adam over SGD"),
}
TARGETS = {20: 2.5, 128: 1.3}  # vae_jax / torch eager, CPU
# Multiply-adds of one example's forward pass through 784-400-(20, 20) / 20-400-784.
FORWARD_MACS = 784 * 400 + 400 * 20 * 2 + 20 * 400 + 400 * 784
INPUT_LAYER_MACS = 784 * 400  # its backward needs dL/dW only: no gradient for the data


def train_flops_per_example() -> float:
    """Matmul FLOPs of one training example, 2 per multiply-add: forward F, weight
    gradients F, input gradients F less the first layer's; elementwise work left out."""
    return 2 * (3 * FORWARD_MACS - INPUT_LAYER_MACS)


def load_data():
    """(dataset, name): MNIST with vae_mnist's split, or synthetic [60000, 784]."""
    import numpy as np

    from vae_jax import data as data_lib

    try:
        kwargs = {"data_dir": _DATA_DIR.value or None, "valid_size": 0}
        return data_lib.load_dataset("mnist", **kwargs), "mnist"
    except data_lib.DataNotFoundError:
        x = np.random.default_rng(0).random((60000, 784), dtype=np.float32)
        empty = np.zeros((0, 784), np.float32)
        dataset = data_lib.Dataset(
            "synthetic", x, empty, x[:1000], None, None, None, (28, 28)
        )
        return dataset, "synthetic (MNIST not found)"


def make_config(batch_size: int):
    from vae_jax.configs import vae_mnist

    config = vae_mnist.get_config()
    config.train.batch_size = batch_size
    config.train.steps_per_dispatch = _DISPATCH.value or config.train.steps_per_dispatch
    return config


class JaxContender:
    """vae_jax's training loop (``train.ChunkRunner``); ``run(n)`` trains n steps, a
    whole number of epochs (block), in the loop's chunks: <= steps_per_dispatch steps,
    one compiled program whatever their length."""

    def __init__(self, config, dataset):
        import jax

        from vae_jax import build

        self.jax, exp = jax, build.build_experiment(config, dataset)
        self.runner, self.state = exp.chunk_runner(), exp.init_state()
        self.step, self.block = 0, exp.steps_per_epoch

    def run(self, num_steps: int) -> None:
        end = self.step + num_steps
        while self.step < end:
            n = min(self.runner.steps_per_dispatch, self.runner.max_steps(self.step))
            self.state, metrics = self.runner(self.state, self.step, n)
            self.jax.device_get(metrics)  # loop.train_and_evaluate's one sync per chunk
            self.step += n
        self.jax.block_until_ready(self.state)


class TorchContender:
    """The PyTorch loop of ``_torch_vae``, eager or ``torch.compile``d; block = 1."""

    block = 1

    def __init__(self, config, dataset, compile_step: bool):
        import _torch_vae as tv

        model, optimizer = tv.new_model_and_optimizer(config.seed)
        self.step = tv.make_train_step(model, optimizer, compile_step)
        generator = tv.torch.Generator().manual_seed(config.seed)
        train_x = tv.to_tensor(dataset.train)
        self.batches = tv.endless_batches(train_x, config.train.batch_size, generator)

    def run(self, num_steps: int) -> None:
        for _ in range(num_steps):
            self.step(next(self.batches))  # CPU eager is synchronous: no sync needed


def timed(contender, num_steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of ``run(num_steps)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    contender.run(num_steps)
    return time.perf_counter() - wall, time.process_time() - cpu


def calibrate(contender) -> int:
    """Warms up (compiles; torch.compile may recompile once the Adam state exists),
    then picks steps per round: --steps_per_round or about --round_seconds, a
    multiple of the contender's block."""
    block = contender.block
    for _ in range(3):
        timed(contender, block)
    probe = -(-10 // block) * block  # >= 10 steps
    seconds = timed(contender, probe)[0] / probe  # per step
    wanted = _STEPS.value or _ROUND_SECONDS.value / seconds
    return max(block, round(wanted / block) * block)


def make_contenders(batch_size: int, dataset) -> tuple[dict, dict]:
    """{name: (warmed-up contender, steps per round)}, {name: why unavailable}."""
    from vae_jax.sweep import spec

    config = make_config(batch_size)
    builders = {
        "vae_jax": lambda: JaxContender(config, dataset),
        "torch_eager": lambda: TorchContender(config, dataset, compile_step=False),
    }
    if _COMPILE.value:
        builders["torch_compile"] = lambda: TorchContender(config, dataset, True)
    for name, (field, value, _) in ABLATIONS.items() if _ABLATIONS.value else ():
        ablated = spec.apply_overrides(config, {field: value})
        builders[name] = lambda c=ablated: JaxContender(c, dataset)
    contenders, unavailable = {}, {}
    for name, build in builders.items():
        try:
            contender = build()
            contenders[name] = (contender, calibrate(contender))
        except Exception as err:  # a torch.compile failure is reported, not raised
            if name != "torch_compile":
                raise
            unavailable[name] = f"{type(err).__name__}: {str(err)[:300]}"
    return contenders, unavailable


def benchmark_batch(batch_size: int, dataset, matmul) -> dict:
    """Alternates the contenders (and the matmul) for --rounds: examples/s per wall
    second and per CPU second, each round and median."""
    contenders, unavailable = make_contenders(batch_size, dataset)
    rates, cpu_rates = {n: [] for n in contenders}, {n: [] for n in contenders}
    matmul_rates, ceiling_rates, ceiling = [], [], make_step_matmuls(batch_size)
    for r in range(_ROUNDS.value):
        for name, (contender, steps) in contenders.items():
            wall, cpu = timed(contender, steps)
            rates[name].append(steps * batch_size / wall)
            cpu_rates[name].append(steps * batch_size / cpu)
        matmul_rates.append(matmul())
        ceiling_rates.append(ceiling())
        print(
            f"  B={batch_size} round {r + 1}: "
            + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items())
            + f" ex/s; matmul {matmul_rates[-1] / 1e9:.1f} GFLOP/s,"
            + f" step matmuls {ceiling_rates[-1] / 1e9:.1f} GFLOP/s",
            flush=True,
        )
    return {
        "batch_size": batch_size,
        "steps_per_round": {name: s for name, (_, s) in contenders.items()},
        "rates": rates,
        "median": {name: statistics.median(v) for name, v in rates.items()},
        "cpu_rates": cpu_rates,
        "median_per_cpu_second": {
            n: statistics.median(v) for n, v in cpu_rates.items()
        },
        "matmul_flops": statistics.median(matmul_rates),
        "step_matmuls_flops": statistics.median(ceiling_rates),
        "unavailable": unavailable,
    }


def nll_flops_per_example(k: int, hidden=(200, 200), latent: int = 50) -> float:
    """FLOPs of L_k(x) for iwae_mnist's 784-200-200-50 model: the encoder once, the
    decoder 50-200-200-784 k times (2 FLOPs per multiply-add; elementwise work left out)."""
    widths = (784, *hidden)
    encoder = (
        sum(a * b for a, b in itertools.pairwise(widths)) + hidden[-1] * 2 * latent
    )
    dec = (latent, *hidden[::-1], 784)
    decoder = sum(a * b for a, b in itertools.pairwise(dec))
    return 2.0 * (encoder + k * decoder)


def benchmark_nll(dataset, matmul) -> dict:
    """examples/s of the test NLL estimate -L_k (``evaluate.make_log_likelihood_fn``,
    batches of 20 as in ``reproduce_iwae.py``) on iwae_mnist's model, alternated with
    the matmul for --rounds; FLOP rate as a % of the matmul's."""
    import jax
    import numpy as np

    from vae_jax import build, evaluate
    from vae_jax.configs import iwae_mnist

    config = iwae_mnist.get_config()
    exp = build.build_experiment(config, dataset)
    params = exp.init_state().params
    log_weights = exp.model.log_weights
    ll_fn = evaluate.make_log_likelihood_fn(log_weights, _NLL_K.value, _NLL_CHUNK.value)
    n = _NLL_EXAMPLES.value
    x = (np.asarray(dataset.test[:n]) > 0.5).astype(np.float32)
    key = jax.random.key(0)
    evaluate.evaluate_log_likelihood(ll_fn, params, x, 20, key)  # compile
    rates, matmul_rates = [], []
    for r in range(_ROUNDS.value):
        start = time.perf_counter()
        evaluate.evaluate_log_likelihood(ll_fn, params, x, 20, key)  # one host sync
        rates.append(n / (time.perf_counter() - start))
        matmul_rates.append(matmul())
        print(
            f"  NLL k={_NLL_K.value} round {r + 1}: {rates[-1]:.1f} ex/s; "
            f"matmul {matmul_rates[-1] / 1e9:.1f} GFLOP/s",
            flush=True,
        )
    rate, mm = statistics.median(rates), statistics.median(matmul_rates)
    flops = rate * nll_flops_per_example(_NLL_K.value)
    return {
        "num_samples": _NLL_K.value,
        "examples": n,
        "rates": rates,
        "median": rate,
        "gflops": flops / 1e9,
        "matmul_flops": mm,
        "pct_of_matmul": 100 * flops / mm,
    }


def make_sweep_contenders(num_configs: int, batch_size: int, dataset):
    """Two ways to train ``num_configs`` vae_mnist configs (learning rates x seeds) for
    one chunk of steps: ``sweep_vmap``'s vmapped chunk over stacked states (what
    ``--mode=vmap`` runs) and each config's ``ChunkRunner`` one after another (what
    ``--mode=process`` runs in one worker). Returns ({name: run() -> examples/s}, steps)."""
    import jax

    from vae_jax import build
    from vae_jax.sweep import spec, vmapped

    base = make_config(batch_size)
    base.train.data_parallel = "off"
    rates = (1e-3, 3e-4)
    overrides = [
        {"optim.learning_rate": rates[i % 2], "seed": i // 2}
        for i in range(num_configs)
    ]
    exps = [
        build.build_experiment(run.config, dataset)
        for run in spec.make_runs(base, overrides)
    ]
    steps = min(exps[0].config.train.steps_per_dispatch, exps[0].steps_per_epoch)
    runners = [(e.chunk_runner(), e.init_state()) for e in exps]
    sequential = [list(pair) for pair in runners]

    stacked = [
        vmapped.stack_states(
            exps[0], [st for _, st in runners], [e.config for e in exps]
        )
    ]
    data_keys = jax.numpy.stack([e.keys["data"] for e in exps])
    num_examples = exps[0].train_x.shape[0]
    orders = vmapped.stacked_orders(data_keys, num_examples, batch_size, steps)
    chunk = vmapped.make_sweep_chunk(vmapped.make_sweep_step(exps[0]), steps, True)
    step = jax.numpy.int32(steps)

    def run_vmapped() -> float:
        start = time.perf_counter()
        first, stacked_orders = orders(int(stacked[0].step[0]))
        stacked[0], metrics = chunk(
            stacked[0], exps[0].train_x, stacked_orders, jax.numpy.int32(first), step
        )
        jax.device_get(metrics)
        return num_configs * steps * batch_size / (time.perf_counter() - start)

    def run_sequential() -> float:
        start = time.perf_counter()
        for pair in sequential:
            pair[1], _ = pair[0](pair[1], int(pair[1].step), steps)
        return num_configs * steps * batch_size / (time.perf_counter() - start)

    for run in (run_vmapped, run_sequential):
        run()  # compile
    return {"vmapped": run_vmapped, "sequential": run_sequential}, steps


def benchmark_sweep(dataset) -> dict:
    """examples/s (all configs together) of a vmapped sweep vs the same configs trained
    one after another, alternated for --rounds; medians and their ratio."""
    num, batch_size = _SWEEP_CONFIGS.value, _SWEEP_BATCH.value
    contenders, steps = make_sweep_contenders(num, batch_size, dataset)
    rates = {name: [] for name in contenders}
    for r in range(_ROUNDS.value):
        for name, run in contenders.items():
            rates[name].append(run())
        print(
            f"  sweep of {num} configs, B={batch_size}, round {r + 1}: "
            + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rates.items())
            + " ex/s",
            flush=True,
        )
    median = {name: statistics.median(v) for name, v in rates.items()}
    return {
        "num_configs": num,
        "batch_size": batch_size,
        "steps_per_round": steps,
        "rates": rates,
        "median": median,
        "vmapped/sequential": median["vmapped"] / median["sequential"],
    }


def make_matmul(size: int, reps: int = 3):
    """Compiles a float32 [size, size] @ [size, size] and returns rate() -> FLOP/s of
    ``reps`` back-to-back products (2 size^3 FLOPs each)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))

    def rate() -> float:
        start = time.perf_counter()
        for _ in range(reps):
            jax.block_until_ready(dot(a, a))
        return reps * 2 * size**3 / (time.perf_counter() - start)

    return rate


def make_step_matmuls(batch_size: int, steps: int = 50):
    """rate() -> FLOP/s of the bare matmuls of ``steps`` training steps at ``batch_size``.

    The shapes of 784-400-(20, 20) / 20-400-784 with the work ``train_flops_per_example``
    counts (forward, weight gradients, input gradients but the data's), no nonlinearity,
    the MSE gradient out - x, and W -= 1e-6 dW so nothing is dead code; scan-fused.
    """
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(1), 5)
    x = jax.random.uniform(keys[0], (batch_size, 784))
    shapes = ((784, 400), (400, 40), (20, 400), (400, 784))
    params = [0.05 * jax.random.normal(k, s) for k, s in zip(keys[1:], shapes)]

    def step(params, _):
        w1, w2, w3, w4 = params
        h1 = x @ w1
        z = (h1 @ w2)[:, :20]  # the mean head; logvar's columns cost the same
        h3 = z @ w3
        g_out = h3 @ w4 - x  # d/d(out) of 0.5 ||out - x||^2
        g3 = g_out @ w4.T
        g_z = g3 @ w3.T
        g2 = jnp.concatenate([g_z, g_z], axis=1)  # [B, 40]
        grads = (x.T @ (g2 @ w2.T), h1.T @ g2, z.T @ g3, h3.T @ g_out)
        return [w - 1e-6 * g for w, g in zip(params, grads)], None

    run = jax.jit(lambda p: jax.lax.scan(step, p, None, length=steps)[0])
    jax.block_until_ready(run(params))

    def rate() -> float:
        start = time.perf_counter()
        jax.block_until_ready(run(params))
        elapsed = time.perf_counter() - start
        return steps * batch_size * train_flops_per_example() / elapsed

    return rate


def _ratios(rates: dict[str, float]) -> dict[str, float]:
    """{"vae_jax/<other>": vae_jax's rate over the other's}."""
    return {
        f"vae_jax/{n}": rates["vae_jax"] / v for n, v in rates.items() if n != "vae_jax"
    }


def summarize(result: dict) -> dict:
    """Adds ratios jax/torch, vae_jax's training GFLOP/s and its % of the matmul rate."""
    flops = result["median"]["vae_jax"] * train_flops_per_example()
    return {
        **result,
        "ratios": _ratios(result["median"]),
        "ratios_per_cpu_second": _ratios(result["median_per_cpu_second"]),
        "target": TARGETS.get(result["batch_size"]),
        "jax_gflops": flops / 1e9,
        "jax_pct_of_matmul": 100 * flops / result["matmul_flops"],
        "ceiling_pct_of_matmul": 100
        * result["step_matmuls_flops"]
        / result["matmul_flops"],
    }


def _verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return "-"
    return f">={target:g} {'ok' if ratio >= target else 'NO'}"


def _row(batch_size: int, rates: dict, ratios: dict) -> str:
    """B, examples/s of each contender, jax/eager, jax/compile."""
    cells = [f"{rates[n]:,.0f}" if n in rates else "-" for n in CONTENDERS]
    cells += [
        f"{ratios[k]:.2f}x" if k in ratios else "-"
        for k in ("vae_jax/torch_eager", "vae_jax/torch_compile")
    ]
    widths = (9, 11, 13, 9, 11)
    return f"{batch_size:>5} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths))


def print_table(results: list[dict]) -> None:
    """Medians of examples/s (wall clock), ratios, targets and FLOP rates."""
    head = "    B   vae_jax torch_eager torch_compile jax/eager jax/compile"
    print(
        f"\nexamples/s (median over rounds)\n{head}   target  matmul GF/s"
        "  jax GF/s  % matmul  ceiling"
    )
    for r in results:
        eager = r["ratios"].get("vae_jax/torch_eager", float("nan"))
        print(
            _row(r["batch_size"], r["median"], r["ratios"])
            + f" {_verdict(eager, r['target']):>8} {r['matmul_flops'] / 1e9:>12.1f}"
            + f" {r['jax_gflops']:>9.1f} {r['jax_pct_of_matmul']:>8.1f}%"
            + f" {r['ceiling_pct_of_matmul']:>7.1f}%"
        )
    print(
        f"\nexamples per CPU-second of this process (less sensitive to a busy machine)\n{head}"
    )
    for r in results:
        print(
            _row(
                r["batch_size"], r["median_per_cpu_second"], r["ratios_per_cpu_second"]
            )
        )
    for r in results:
        print_ablations(r)
    for r in results:
        for name, why in r["unavailable"].items():
            print(f"B={r['batch_size']}: {name} unavailable: {why}")


def print_ablations(result: dict) -> None:
    """Microseconds per step of vae_jax and the share of it each ablated part takes."""
    rates, batch_size = result["median"], result["batch_size"]
    if not any(name in rates for name in ABLATIONS):
        return
    step_us = 1e6 * batch_size / rates["vae_jax"]
    parts = []
    for name, (_, _, part) in ABLATIONS.items():
        saved = step_us - 1e6 * batch_size / rates[name]
        parts.append(f"{part} {saved:.0f} us ({100 * saved / step_us:.0f}%)")
    print(f"B={batch_size}: vae_jax step {step_us:.0f} us; of it " + ", ".join(parts))


def jax_backend() -> str:
    import jax

    return jax.default_backend()


def environment() -> dict:
    import _torch_vae as tv
    import jax

    return {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": tv.torch.get_num_threads(),
        "jax": jax.__version__,
        "torch": tv.torch.__version__,
        "jax_device": str(jax.devices()[0]),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": os.getloadavg(),
    }


def main_end_to_end() -> None:
    """``--end_to_end``: medians of whole-process wall times and their ratios."""
    import sys

    import _end_to_end

    root = pathlib.Path(_WORKDIR.value or "/tmp/vae_jax_end_to_end").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    python = _TORCH_PYTHON.value or sys.executable
    result = _end_to_end.end_to_end(root, rounds=_ROUNDS.value, torch_python=python)
    if _SWEEP_CONFIGS.value:
        result["sweep"] = _end_to_end.sweep_cold_and_warm(root)
    print(json.dumps(result, indent=1))
    (root / "end_to_end.json").write_text(json.dumps(result, indent=1) + "\n")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _END_TO_END.value:
        return main_end_to_end()
    import _torch_vae as tv  # exits with a message if torch is missing

    from vae_jax import runtime

    runtime.configure(plot_backend=None)
    tv.set_threads(_THREADS.value)
    env = environment()
    print(" ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    if env["load_average"][0] > 0.5 * (os.cpu_count() or 1):
        print(
            "WARNING: the machine is busy (1-min load average above half the cores): "
            "timings are noisy, and OpenMP's spin-waiting can slow torch's threads "
            "far more than XLA's (try --torch_threads=1 or OMP_WAIT_POLICY=PASSIVE)."
        )
    dataset, data_name = load_data()
    print(f"data: {data_name}", flush=True)
    matmul = make_matmul(_MATMUL.value)
    results = [
        summarize(benchmark_batch(int(b), dataset, matmul)) for b in _BATCH_SIZES.value
    ]
    print_table(results)
    nll = benchmark_nll(dataset, matmul) if _NLL_EXAMPLES.value else None
    if nll:
        print(
            f"\ntest NLL estimate -L_k, k={nll['num_samples']} (iwae_mnist model): "
            f"{nll['median']:.1f} examples/s, {nll['gflops']:.1f} GFLOP/s = "
            f"{nll['pct_of_matmul']:.0f}% of the matmul's {nll['matmul_flops'] / 1e9:.1f} "
            f"GFLOP/s (target >= 50%)"
        )
    sweep = benchmark_sweep(dataset) if _SWEEP_CONFIGS.value else None
    if sweep:
        print(
            f"\nsweep of {sweep['num_configs']} configs at B={sweep['batch_size']} "
            f"({jax_backend()}): vmapped {sweep['median']['vmapped']:,.0f} ex/s, one "
            f"after another {sweep['median']['sequential']:,.0f} ex/s, vmapped/"
            f"sequential {sweep['vmapped/sequential']:.2f}x (GPU target >= 4x)"
        )
    env["load_average_end"] = os.getloadavg()
    if _WORKDIR.value:
        workdir = pathlib.Path(_WORKDIR.value).expanduser()
        workdir.mkdir(parents=True, exist_ok=True)
        record = {
            **env,
            "data": data_name,
            "results": results,
            "nll": nll,
            "sweep": sweep,
        }
        (workdir / "benchmark.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"results: {workdir / 'benchmark.json'}")


if __name__ == "__main__":
    app.run(main)
