"""vae_jax: autoencoders and variational autoencoders in JAX/Flax.

``vae_jax.load_run(workdir)`` (``runs.load_run``) is imported on first use: importing
the package stays cheap and changes no global state.
"""

__version__ = "0.1.0"

_LAZY = ("load_run",)  # public names imported on first access


def __getattr__(name: str):
    if name == "load_run":
        from vae_jax.runs import load_run

        return load_run
    raise AttributeError(f"module 'vae_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
