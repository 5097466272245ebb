"""A sweep's specification: which configs, their names, which can share a program.

A sweep is a list of override dicts on a base config, e.g. ``{"optim.learning_rate":
1e-3, "seed": 0}`` (``parse_sweep``: the cartesian product of ``a.b=1,2;c=x,y``, or
``load_get_sweep``: a config file's ``get_sweep()``). ``make_runs`` validates each
config and names it (``run_name``); ``vmap_groups`` groups configs that differ only in
``VMAPPABLE`` fields, which ``sweep_vmap.train_vmapped`` trains as one program.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import decimal
import difflib
import functools
import hashlib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from vae_jax import config_checks

# Numeric fields that change no shape or program: they may differ within one vmap.
VMAPPABLE = (
    "seed",
    "optim.learning_rate",
    "objective.beta",
    "objective.kl_warmup_steps",
    "objective.noise_level",
    "objective.sparsity_target",
    "objective.sparsity_weight",
    "objective.robust_scale",  # robust_mse
    "objective.ciwae_beta",
    "objective.mmd_weight",
    "objective.code_penalty",  # rae_l2 / rae_gp
    "objective.decoder_weight_decay",
    "objective.gradient_penalty",
    "objective.commitment",  # vq
    "objective.tc_beta",  # beta_tcvae
)


@dataclasses.dataclass(frozen=True)
class Run:
    """One config of a sweep: its directory name, overrides and full config."""

    name: str
    overrides: dict[str, Any]
    config: ml_collections.ConfigDict


def flatten(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Dotted leaf names -> values, e.g. {"optim.learning_rate": 1e-3, "seed": 0, ...}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


def _unknown_field(key: str, fields) -> ValueError:
    close = difflib.get_close_matches(key, list(fields), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"Unknown config field {key!r} in the sweep{hint}.")


def parse_value(key: str, text: str, current: Any) -> Any:
    """``text`` as the type of the field's ``current`` value: "3e-4" -> float, "2" ->
    int, "true" -> bool, "(64, 32)" -> tuple, else str. ValueError if unparseable."""
    text = text.strip()
    try:
        if isinstance(current, bool):
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        if isinstance(current, int):
            number = decimal.Decimal(text)  # exact: "1e30" is 10**30, not float's
            if not number.is_finite() or number != number.to_integral_value():
                raise ValueError
            return int(number)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            value = ast.literal_eval(text)
            return tuple(value) if isinstance(value, (tuple, list)) else (value,)
        return text.strip("'\"") if isinstance(current, str) else ast.literal_eval(text)
    except (ValueError, KeyError, SyntaxError, decimal.InvalidOperation):
        kind = type(current).__name__
        raise ValueError(f"Cannot parse {text!r} as {key} (a {kind}).") from None


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets: "(1,2),(3,)" -> ["(1,2)", "(3,)"]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def parse_sweep(spec: str, base: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """Spec "a.b=1,2;c=x" -> the cartesian product [{"a.b": 1, "c": "x"}, {"a.b": 2, ...}]
    (last axis fastest), each value typed like ``base``'s field. ValueError for an
    unknown field, an unparseable value, or two values of a field that would give
    their configs one run name ("1e-3,0.001": the same value)."""
    fields, axes = flatten(base), {}
    for part in _split_top(spec, ";"):
        key, equals, values = (s.strip() for s in part.partition("="))
        if not key and not values:
            continue
        if not equals or not key or not values:
            raise ValueError(f"Sweep axis {part.strip()!r} is not 'field=v1,v2,...'.")
        if key not in fields:
            raise _unknown_field(key, fields)
        if key in axes:
            raise ValueError(f"Field {key!r} appears twice in the sweep.")
        texts = [v.strip() for v in _split_top(values, ",")]
        axes[key] = [parse_value(key, v, fields[key]) for v in texts]
        _check_axis_names(key, texts, axes[key])
    if not axes:
        raise ValueError(f"Empty sweep {spec!r}; expected 'field=v1,v2;field2=...'.")
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _check_axis_names(key: str, texts: Sequence[str], values: Sequence[Any]) -> None:
    """ValueError if two values of one sweep axis would name their configs alike."""
    seen = {}
    for text, value in zip(texts, values):
        shown = sanitize(format_value(value))
        if shown not in seen:
            seen[shown] = (text, value)
            continue
        first_text, first_value = seen[shown]
        if format_value(first_value) == format_value(value):
            raise ValueError(
                f"Sweep values {first_text!r} and {text!r} of {key} are the same value "
                f"({format_value(value)}); list it once."
            )
        raise ValueError(
            f"Sweep values {first_text!r} and {text!r} of {key} both become "
            f"{shown!r} in run names, so their configs would share a directory: "
            f"{_NAME_RULE}; make the values differ in those."
        )


def load_get_sweep(config_file: str) -> list[dict[str, Any]] | None:
    """``get_sweep()`` of a config file (a list of override dicts), or None if absent."""
    import importlib.util

    path = config_file if os.path.exists(config_file) else config_file.split(":")[0]
    spec = importlib.util.spec_from_file_location("_sweep_config", path)
    if spec is None:
        raise ValueError(f"Cannot load config file {path!r}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        return None
    overrides = list(module.get_sweep())
    if not overrides or not all(isinstance(o, Mapping) for o in overrides):
        raise ValueError(
            f"get_sweep() in {path} must return a non-empty list of dicts."
        )
    return [dict(o) for o in overrides]


def apply_overrides(base: ml_collections.ConfigDict, overrides: Mapping[str, Any]):
    """A copy of ``base`` with the dotted ``overrides`` set (types as in ``base``)."""
    config, fields = copy.deepcopy(base), flatten(base)
    for key, value in overrides.items():
        if key not in fields:
            raise _unknown_field(key, fields)
        *path, leaf = key.split(".")
        node = functools.reduce(lambda n, p: n[p], path, config)
        value = tuple(value) if isinstance(value, list) else value
        try:
            setattr(node, leaf, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Bad sweep value {key}={value!r}: {err}") from None
    return config


def format_value(value: Any) -> str:
    """A value as in run names and tables: 3e-4 -> "0.0003", (64, 32) -> "64-32"."""
    if isinstance(value, (tuple, list)):
        return "-".join(map(format_value, value)) or "none"
    return repr(value) if isinstance(value, float) else str(value)


_NAME_CHARS = "A-Za-z0-9._=+-"
_NAME_RULE = "run names keep letters, digits and ._=+- (any other character becomes -)"


def sanitize(text: str) -> str:
    """``text`` with each character outside [A-Za-z0-9._=+-] replaced by "-"."""
    return re.sub(f"[^{_NAME_CHARS}]", "-", text)


def run_name(overrides: Mapping[str, Any]) -> str:
    """Filename-safe directory name: {"optim.learning_rate": 3e-4, "seed": 1} ->
    "learning_rate=0.0003_seed=1" (full dotted keys where last parts clash).

    A pure function of the config's own overrides, so a config keeps its directory
    (its checkpoints, its ``done.json``) when others join or leave the sweep. Two
    configs of one sweep that get the same name (values differing only in characters
    ``sanitize`` replaces) are therefore rejected by ``make_runs`` rather than renamed:
    a suffix decided by the other configs would move a directory between reruns."""
    lasts = [key.split(".")[-1] for key in overrides]
    parts = [
        f"{key if lasts.count(last) > 1 else last}={format_value(value)}"
        for (key, value), last in zip(overrides.items(), lasts)
    ]
    name = sanitize("_".join(parts)) or "base"
    if len(name) > 200:  # file names stop at 255 bytes
        name = name[:180] + "_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def make_runs(base: ml_collections.ConfigDict, sweep: Sequence[Mapping]) -> list[Run]:
    """One validated config per override dict, all checked before any trains.

    ValueError names an invalid config, or two configs with one ``run_name``: the
    same overrides listed twice, or values that differ only in characters a run name
    replaces (then it names the field and both values)."""
    runs, by_name = [], {}
    for overrides in sweep:
        config = apply_overrides(base, overrides)
        try:
            config_checks.validate_config(config)
        except ValueError as err:
            raise ValueError(f"Sweep config {run_name(overrides)}: {err}") from None
        run = Run(run_name(overrides), dict(overrides), config)
        if run.name in by_name:
            raise _same_name_error(by_name[run.name], run)
        by_name[run.name] = run
        runs.append(run)
    return runs


def _same_name_error(first: Run, second: Run) -> ValueError:
    """The error for two configs of a sweep that ``run_name`` names alike."""
    a, b = flatten(first.config), flatten(second.config)
    keys = dict.fromkeys([*first.overrides, *second.overrides])
    differ = [key for key in keys if a[key] != b[key]]
    if not differ:
        return ValueError(
            f"The sweep lists config {first.name!r} twice (overrides "
            f"{first.overrides}); list it once."
        )
    if first.overrides.keys() != second.overrides.keys():
        return ValueError(
            f"Sweep configs {first.overrides} and {second.overrides} both get the run "
            f"name {first.name!r}, which names a field by its last part; give every "
            "config the same fields."
        )
    values = "; ".join(f"{a[key]!r} and {b[key]!r} of {key}" for key in differ)
    return ValueError(
        f"Sweep values {values} map to the same run name {first.name!r}: "
        f"{_NAME_RULE}; make the values differ in those."
    )


def sweep_index(flag_value: int | None, num_runs: int, environ=os.environ):
    """Config index of an array-job task: ``flag_value``, else $SLURM_ARRAY_TASK_ID,
    else None (all configs). ValueError when out of [0, num_runs)."""
    index, source = flag_value, "--sweep_index"
    if index is None and environ.get("SLURM_ARRAY_TASK_ID", "").strip():
        source, text = "SLURM_ARRAY_TASK_ID", environ["SLURM_ARRAY_TASK_ID"]
        if not text.strip().isdigit():
            raise ValueError(f"{source}={text!r} is not an integer.")
        index = int(text)
    if index is not None and not 0 <= index < num_runs:
        raise ValueError(
            f"{source}={index} is out of range: the sweep has {num_runs} configs "
            f"(0..{num_runs - 1})."
        )
    return index


def _ema_codebook(run: Run) -> bool:
    """Whether ``run`` updates a VQ-VAE's codebook by moving averages, not the
    optimizer: ``vmapped.SweepState`` would scale that update too."""
    return run.config.objective.get("codebook_update") == "ema"


def vmap_groups(runs: Sequence[Run]) -> list[list[Run]]:
    """``runs`` grouped by every field outside ``VMAPPABLE``: one program per group;
    a run with an EMA codebook forms a group of its own (``check_vmappable``)."""
    groups = {}
    for run in runs:
        fixed = sorted((k, repr(v)) for k, v in flatten(run.config).items())
        key = repr([kv for kv in fixed if kv[0] not in VMAPPABLE])
        if _ema_codebook(run):  # alone: trained as a process
            key = repr(("ema", run.name))
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def check_vmappable(runs: Sequence[Run]) -> None:
    """ValueError naming a field outside ``VMAPPABLE`` in which two configs differ,
    or an EMA codebook (``SweepState`` scales every update by the learning rate)."""
    if any(map(_ema_codebook, runs)):
        raise ValueError(
            "--mode=vmap scales every update by the learning rate, the EMA codebook's "
            "(objective.codebook_update='ema') too. Use --mode=process."
        )
    first = flatten(runs[0].config)
    for run in runs[1:]:
        for key, value in flatten(run.config).items():
            if key not in VMAPPABLE and value != first[key]:
                raise ValueError(
                    f"--mode=vmap trains configs that differ only in {', '.join(VMAPPABLE)}"
                    f"; {runs[0].name} and {run.name} differ in {key} ({first[key]!r} vs "
                    f"{value!r}), which changes shapes or the program. Use --mode=process."
                )
