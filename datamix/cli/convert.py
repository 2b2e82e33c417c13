"""`datamix convert` and `datamix converters`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.convert import convert_in_worker, rejects_path, run_conversion
from datamix.converters import CONVERTERS, ConvertOptions
from datamix.converters.options import parse_assignments
from datamix.errors import ConverterError
from datamix.ledger import Ledger
from datamix.prompts import PromptPolicy


def options_listing() -> str:
    """Each converter's declared options, one line each: `id: name=a|b (default a) help`."""
    lines = []
    for cid, cls in CONVERTERS.items():
        for spec in cls.option_specs():
            lines.append(f"{cid}: {spec.name}={spec.allowed} (default {spec.default}): {spec.help}")
    return "\n\n".join(lines)


@app.command(epilog="Converter options (--option key=value):\n\n" + options_listing())
@fails_cleanly
def convert(
    source: Annotated[str, typer.Argument(help=f"Converter id: {', '.join(CONVERTERS)}.")],
    paths: Annotated[list[str], typer.Argument(help="Official files as downloaded, folders of them, or globs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet file.")],
    format_prompt: Annotated[PromptPolicy, typer.Option(
        help="Where to append the LLaVA-1.5 response-format prompt.")] = PromptPolicy.first_turn,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-O", help="A converter option as key=value, repeatable; each converter's options are "
                               "listed below and by `datamix converters`.")] = None,
    engine: Annotated[str, typer.Option(help="local (this process) or ray (a task on the cluster, e.g. a node "
                                             "with more memory; the files on a shared file system).")] = "local",
    address: Annotated[str | None, typer.Option(help="With --engine ray: the cluster (auto, host:port, "
                                                     "ray://host:port); none starts a local Ray.")] = None,
) -> None:
    """Convert the official files of one source into the unified schema (Parquet) plus a rejects ledger."""
    try:
        values = parse_assignments(option or [])
    except ValueError as exc:
        raise ConverterError(str(exc)) from None
    job = (source, paths, out, ConvertOptions(format_prompt=format_prompt, **values))
    if engine == "local" and address is None:
        ledger = run_conversion(*job)
    else:
        ledger = convert_on_engine(job, engine, address)
    print_report(ledger, out)


def convert_on_engine(job: tuple, engine: str, address: str | None) -> Ledger:
    """The same conversion as one task of the engine (the output the same bytes)."""
    from datamix.builder.engines import open_engine

    source, paths, out, options = job
    out, paths = Path(out).absolute(), [str(Path(p).absolute()) for p in paths]  # a task's folder is not ours
    out.parent.mkdir(parents=True, exist_ok=True)
    reads = [Path(p) for p in paths if Path(p).exists()]  # globs are expanded by the task itself
    with open_engine(engine, workers=1, address=address, out=out.parent, reads=reads, echo=typer.echo) as runner, \
            runner.mapper(1) as pool:
        return next(iter(pool.imap(convert_in_worker, [(source, paths, out, options)], chunksize=1)))


def print_report(ledger: Ledger, out: Path) -> None:
    typer.echo(f"{ledger.source}: {ledger.records_in:,} records in -> {ledger.samples_out:,} samples out "
               f"({ledger.records_out:,} records used), {ledger.rejected:,} rejected")
    for reason, count in ledger.by_reason().items():
        typer.echo(f"  rejected {count:>10,}  {reason}")
    typer.echo(f"wrote {out} and {rejects_path(out)}")


@app.command()
def converters() -> None:
    """List the converters, what each reads and the options each declares."""
    for cid, cls in CONVERTERS.items():
        typer.echo(f"{cid:<10} {cls.description}")
        for spec in cls.option_specs():
            typer.echo(f"{'':<10}   --option {spec.name}={spec.allowed} (default {spec.default}): {spec.help}")
