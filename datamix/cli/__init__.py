"""The `datamix` command line: thin typer commands over library functions.

Every error a user can cause prints as one line (`error: ...`) with exit code 1; `--debug` shows the traceback.
Ctrl-C prints `interrupted` and exits with 130, the shell's code for SIGINT (partial outputs are removed by the
writers, which only rename a file into place once it is complete).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from datamix.errors import DatamixError

F = TypeVar("F", bound=Callable)

app = typer.Typer(
    name="datamix",
    help="Build, subsample, inspect and train on LLaVA-1.5-style vision-language data mixtures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Settings:
    debug = False


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False) -> None:
    _Settings.debug = debug


def fails_cleanly(command: F) -> F:
    """Turn any exception into one line on stderr and exit code 1, unless --debug asks for the traceback;
    Ctrl-C into one line and exit code 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True, fg=typer.colors.RED)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _output_gone()
        except Exception as exc:  # noqa: BLE001 - the CLI boundary: everything becomes one clear line
            if _Settings.debug:
                raise
            detail = str(exc) if isinstance(exc, DatamixError) else f"{type(exc).__name__}: {exc}"
            typer.secho(f"error: {detail}", err=True, fg=typer.colors.RED)
            if not isinstance(exc, DatamixError):
                typer.echo("(unexpected; run with --debug for the traceback)", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _output_gone() -> None:
    """The reader of our output went away (`datamix show ... | head`): stop quietly, as Unix tools do, with
    stdout pointed at /dev/null so the interpreter's final flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(141)


def main() -> None:
    try:
        app()
    finally:  # what is still buffered is written here, after the command: a closed pipe is no error either
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _output_gone()


from datamix.cli import convert as _convert  # noqa: E402,F401  (registers its commands)
from datamix.cli import build as _build  # noqa: E402,F401
from datamix.cli import demo as _demo  # noqa: E402,F401
from datamix.cli import mixes as _mixes  # noqa: E402,F401
from datamix.cli import train as _train  # noqa: E402,F401
from datamix.cli import stats as _stats  # noqa: E402,F401
from datamix.cli import audit as _audit  # noqa: E402,F401
from datamix.cli import study as _study  # noqa: E402,F401
