"""Every field of a config with its value, type and the comment beside it in the
config files (``python -m experiments.run --config=... --list_fields``).

The comments are read from the files' source: ``configs/default.py`` documents
every field; a config file's own comment on a field it sets (why this value) is
added after it.
"""

from __future__ import annotations

import ast
import io
import pathlib
import tokenize
from collections.abc import Mapping
from typing import Any

import ml_collections

DEFAULT_FILE = pathlib.Path(__file__).with_name("configs") / "default.py"


def _dotted(node: ast.AST) -> str | None:
    """ "model.latent_dim" of the target ``config.model.latent_dim``, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not parts:
        return None
    return ".".join(reversed(parts))


def assignments(source: str) -> list[tuple[str, int, str]]:
    """(field, line, comment) of each ``config.a.b = ...`` assignment in a config
    file's ``source``, in source order; the comment joins the full-line comments
    right above it and, after "; ", those on its own lines (a formatter may wrap a long
    line, moving its trailing comment inside the parentheses). [] if it does not
    parse."""
    try:
        tree = ast.parse(source)
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        comments = {
            t.start[0]: t.string.lstrip("#").strip()
            for t in tokens
            if t.type == tokenize.COMMENT
        }
    except (SyntaxError, tokenize.TokenError, ValueError):
        return []
    lines = source.splitlines()
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [name for name in map(_dotted, targets) if name]
        above, row = [], node.lineno - 1  # 1-based line numbers
        while row >= 1 and lines[row - 1].strip().startswith("#"):
            above.insert(0, comments.get(row, ""))
            row -= 1
        span = range(node.lineno, node.end_lineno + 1)
        own = [comments[r] for r in span if r in comments]
        parts = (" ".join(c for c in above if c), " ".join(c for c in own if c))
        text = "; ".join(part for part in parts if part)
        out.extend((name, node.lineno, text) for name in names)
    return sorted(out, key=lambda item: item[1])


def field_comments(source: str) -> dict[str, str]:
    """{"model.latent_dim": "K", ...}: ``assignments``' comments (fields without one
    are left out)."""
    return {name: text for name, _, text in assignments(source) if text}


def _read(path: str | pathlib.Path) -> str:
    try:
        return pathlib.Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def file_comments(path: str | pathlib.Path) -> dict[str, str]:
    """``field_comments`` of the file at ``path`` ({} if it cannot be read)."""
    return field_comments(_read(path))


def flat_fields(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """{"model.latent_dim": 8, ...}: every leaf field of ``config``, in its order."""
    fields = {}

    def walk(node: Mapping, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, (ml_collections.ConfigDict, Mapping)):
                walk(value, f"{prefix}{key}.")
            else:
                fields[f"{prefix}{key}"] = value

    walk(config, "")
    return fields


def source_file(path: str | pathlib.Path) -> pathlib.Path:
    """The file that defines the config of ``path``: the file itself, or for a
    re-export (``from vae_jax.configs.<name> import get_config``, as in
    ``experiments/configs/``) ``vae_jax/configs/<name>.py``."""
    path = pathlib.Path(path)
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return path
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("vae_jax.configs.")
            and any(alias.name == "get_config" for alias in node.names)
        ):
            target = DEFAULT_FILE.with_name(f"{node.module.rsplit('.', 1)[1]}.py")
            if target.is_file():
                return target
    return path


def describe_fields(
    config: ml_collections.ConfigDict, config_file: str | pathlib.Path | None = None
) -> list[str]:
    """One line per field of ``config`` (in ``default.py``'s order): ``name = value
    (type)  # comment``, the comment from ``default.py`` followed by ``[<file>: ...]``,
    the comment the config file (``source_file(config_file)``) writes where it sets
    the field itself."""
    default_source = _read(DEFAULT_FILE)
    documented = field_comments(default_source)
    order = {name: i for i, (name, _, _) in enumerate(assignments(default_source))}
    own, source = {}, None
    if config_file is not None:
        source = source_file(config_file)
        if source.resolve() != DEFAULT_FILE.resolve():
            own = file_comments(source)
    fields = flat_fields(config)  # in default.py's order, then any others by name
    fields = dict(
        sorted(fields.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    )
    width = max((len(f"{k} = {v!r}") for k, v in fields.items()), default=0)
    lines = []
    for name, value in fields.items():
        comments = [documented.get(name, "")]
        if own.get(name) and own[name] != comments[0]:
            comments.append(f"[{source.name}: {own[name]}]")
        comment = " ".join(c for c in comments if c)
        kind = f"({type(value).__name__})"
        line = f"{f'{name} = {value!r}':<{width}}  {kind:<9}"
        lines.append(f"{line}  # {comment}" if comment else line.rstrip())
    return lines
