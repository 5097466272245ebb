"""Flags and error handling shared by the entry points (``run.py``, ``sweep.py``):
``run``, their ``app.run``, under which a bad flag ends with one logged line and exit
status 1, and ``out_of_memory``, the line for XLA running out of memory."""

import contextlib
import re
import sys

from absl import app, flags, logging


def define_workdir_and_cache(workdir_help: str, *, not_required_with: tuple = ()):
    """``--workdir`` (required, not empty) and ``--compilation_cache``; returns both
    flag holders. ``not_required_with``: bool flags, defined before, with any of which
    ``--workdir`` may be left out (e.g. ``--list_fields``, which trains nothing)."""
    workdir = flags.DEFINE_string("workdir", None, workdir_help)
    cache = flags.DEFINE_string(
        "compilation_cache",
        None,
        "Directory of JAX's persistent compilation cache ('off' disables); default "
        "$VAE_JAX_COMPILATION_CACHE, else ~/.cache/vae_jax/xla.",
    )
    if not_required_with:
        names = " or ".join(f"--{name}" for name in not_required_with)
        flags.register_multi_flags_validator(
            ["workdir", *not_required_with],
            lambda values: (
                values["workdir"] is not None
                or any(values[name] for name in not_required_with)
            ),
            message=f"--workdir is required (except with {names}).",
        )
    else:
        flags.mark_flags_as_required(["workdir"])
    flags.register_validator(
        "workdir",
        lambda value: value is None or value.strip() != "",
        message="--workdir must name a directory (it is empty).",
    )
    return workdir, cache


def run(main) -> None:
    """``app.run(main)``, where flags that do not parse (an unknown ``--config.*``
    field, a value of the wrong type, a missing ``--workdir``) end with one logged
    error line and exit status 1 instead of a traceback or absl's usage text."""
    app.run(main, flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
    """``flags.FLAGS(argv)``; on a bad flag, logs one line and exits with status 1."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:  # wrong type or range, missing flag, unknown flag
        message = str(err).removeprefix("flag ")
    except (AttributeError, KeyError) as err:  # ml_collections: unknown config field
        message = unknown_field_message(err, argv)
        if message is None:  # not an override's field: a bug, keep the traceback
            raise
    except (TypeError, ValueError, OSError, SyntaxError) as err:  # e.g. the config file
        message = f"{type(err).__name__}: {err}"
    if "Traceback (most recent call last)" not in message:  # a config file's own error
        message = " ".join(message.split())  # (ml_collections quotes its traceback)
    flags.FLAGS.mark_as_parsed()  # else absl logging first warns that it is not
    logging.error("Bad flag: %s", message)
    sys.exit(1)


def unknown_field_message(err: Exception, argv: list[str]) -> str | None:
    """One line for ml_collections' error on an unknown field of a ``--config.a.b=v``
    override (``AttributeError(KeyError("'b'\\nDid you mean ..."))``): the argument,
    the field and the suggested argument; None if no argument names that field."""
    inner = err.args[0] if err.args else err
    text = str(inner.args[0] if isinstance(inner, KeyError) and inner.args else inner)
    field = re.match(r"\s*['\"]?([^'\"\n]+)", text)
    hint = re.search(r'Did you mean "([^"]+)"', text)
    if field is None:
        return None
    key = field.group(1)
    for arg in argv[1:]:  # the --config.x.y=v argument naming the field
        parts = arg.lstrip("-").split("=", 1)[0].split(".")
        if key in parts[1:]:
            message = f"--{'.'.join(parts)}: unknown config field {key!r}"
            if hint:
                fixed = [hint.group(1) if part == key else part for part in parts]
                message += f" (did you mean --{'.'.join(fixed)}?)"
            return message
    return None


def out_of_memory(err: BaseException) -> str | None:
    """One line for an XLA error whose message says RESOURCE_EXHAUSTED (device or
    host memory ran out), else None."""
    lines = [line.strip() for line in str(err).splitlines()]
    first = next((line for line in lines if "RESOURCE_EXHAUSTED" in line), None)
    if first is None:
        return None
    return (
        f"out of memory: {first[:300]}; lower model sizes (model.hidden, "
        "model.latent_dim) or batch size (train.batch_size, train.eval_batch_size)."
    )


@contextlib.contextmanager
def one_line_errors(*clean: type[BaseException]):
    """Ends the process with one logged line and exit status 1 on a ``clean`` error
    (bad input) or an XLA out-of-memory error; any other error keeps its traceback."""
    import jax  # lazy: flag parsing needs no JAX

    try:
        yield
    except clean as err:
        logging.error("%s: %s", type(err).__name__, err)
        sys.exit(1)
    except jax.errors.JaxRuntimeError as err:  # XlaRuntimeError
        if (message := out_of_memory(err)) is None:
            raise
        logging.error("%s", message)
        sys.exit(1)
