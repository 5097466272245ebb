"""Flags shared by the entry points (``run.py``, ``sweep.py``)."""

from absl import flags


def define_workdir_and_cache(workdir_help: str):
    """``--workdir`` (required, not empty) and ``--compilation_cache``; returns both
    flag holders."""
    workdir = flags.DEFINE_string("workdir", None, workdir_help)
    cache = flags.DEFINE_string(
        "compilation_cache",
        None,
        "Directory of JAX's persistent compilation cache ('off' disables); default "
        "$VAE_JAX_COMPILATION_CACHE, else ~/.cache/vae_jax/xla.",
    )
    flags.mark_flags_as_required(["workdir"])
    flags.register_validator(
        "workdir",
        lambda value: value is None or value.strip() != "",
        message="--workdir must name a directory (it is empty).",
    )
    return workdir, cache
