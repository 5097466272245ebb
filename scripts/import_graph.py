"""The package's import graph, layer by layer, and a check that no module imports a
higher layer (lazy imports inside functions included).

  python scripts/import_graph.py           # print layers and edges; exit 1 on a violation
  python scripts/import_graph.py --dot     # Graphviz source of the graph
"""

from __future__ import annotations

import ast
import fnmatch
import pathlib
import sys

import vae_jax

# Lowest first. A module may import its own layer and the layers below it.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "foundations",
        [
            "vae_jax.distributions",
            "vae_jax.mmd",
            "vae_jax.flows",
            "vae_jax.corruptions",
            "vae_jax.linear_gaussian",
            "vae_jax.tc",
            "vae_jax.vector_quantize",
            "vae_jax.data_files",
            "vae_jax.data_formats",
            "vae_jax.data",
            "vae_jax.batching",
            "vae_jax.writer",
            "vae_jax.preemption",
            "vae_jax.parallel",
            "vae_jax.checkpoint",
            "vae_jax.early_stopping",
            "vae_jax.plots",
            "vae_jax.runtime",
            "vae_jax.workdir_lock",
            "vae_jax.train_clock",
            "vae_jax.provenance",
            "vae_jax.configs*",
            "vae_jax.config_fields",
        ],
    ),
    ("models", ["vae_jax.models*"]),
    (
        "objectives",
        [
            "vae_jax.ae_objectives",
            "vae_jax.batch_penalty",
            "vae_jax.iwae_objectives",
            "vae_jax.mmd_objectives",
            "vae_jax.objectives",
            "vae_jax.optim",
            "vae_jax.rae_objectives",
            "vae_jax.tc_objectives",
            "vae_jax.vq_objectives",
        ],
    ),
    ("training", ["vae_jax.train", "vae_jax.evaluate", "vae_jax.config_checks"]),
    ("runs", ["vae_jax.build", "vae_jax.figures"]),
    ("loop", ["vae_jax.loop", "vae_jax.runs"]),
    ("sweeps", ["vae_jax.sweep*"]),
    ("studies", ["vae_jax.studies*"]),
    ("reports", ["vae_jax.evaluate_run"]),
    ("package", ["vae_jax"]),  # __init__: lazy exports of the public API (load_run)
]


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def imports(path: pathlib.Path, known: set[str]) -> set[str]:
    """vae_jax modules imported anywhere in ``path`` (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "vae_jax"
        ):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vae_jax")}
    return found & known


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return i
    raise KeyError(module)


def graph() -> dict[str, set[str]]:
    """{module: the vae_jax modules it imports}."""
    root = pathlib.Path(vae_jax.__file__).parent
    files = sorted(root.rglob("*.py"))
    known = {module_name(p, root) for p in files}
    return {
        module_name(p, root): imports(p, known) - {module_name(p, root)} for p in files
    }


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Modules in no layer, and imports of a higher layer."""
    problems = []
    for module, deps in sorted(edges.items()):
        try:
            own = layer_of(module)
        except KeyError:
            problems.append(f"{module}: in no layer (add it to LAYERS)")
            continue
        for dep in sorted(deps):
            if layer_of(dep) > own:
                problems.append(
                    f"{module} ({LAYERS[own][0]}) imports {dep} "
                    f"({LAYERS[layer_of(dep)][0]})"
                )
    return problems


def main() -> int:
    edges = graph()
    if "--dot" in sys.argv:
        print("digraph vae_jax {")
        for module, deps in sorted(edges.items()):
            for dep in sorted(deps):
                print(f'  "{module}" -> "{dep}";')
        print("}")
        return 0
    for i, (name, _) in enumerate(LAYERS):
        members = sorted(m for m in edges if _safe_layer(m) == i)
        print(f"{i} {name}:")
        for m in members:
            deps = ", ".join(d.removeprefix("vae_jax.") for d in sorted(edges[m]))
            print(f"    {m.removeprefix('vae_jax.') or 'vae_jax'} <- {deps or '-'}")
    problems = violations(edges)
    print(
        f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, "
        f"{len(problems)} layer violation(s)"
    )
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


def _safe_layer(module: str) -> int:
    try:
        return layer_of(module)
    except KeyError:
        return -1


if __name__ == "__main__":
    sys.exit(main())
