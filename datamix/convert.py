"""`datamix convert`: official files of one source -> one normalized Parquet file + its rejects ledger."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from datamix.converters import ConvertOptions, get_converter
from datamix.errors import InputError
from datamix.inputs import expand_inputs
from datamix.ledger import Ledger
from datamix.table import SampleWriter


def rejects_path(out: Path) -> Path:
    """The ledger lives next to the output: `vqav2.parquet` -> `vqav2.rejects.jsonl`."""
    return out.with_name(out.name.removesuffix(".parquet") + ".rejects.jsonl")


def run_conversion(converter_id: str, paths: Iterable[str | Path], out: str | Path,
                   options: ConvertOptions | None = None) -> Ledger:
    converter = get_converter(converter_id, options)
    files = expand_inputs(paths, converter.input_suffixes)
    out = Path(out)
    check_output(out, files)
    ledger = Ledger(source=converter.id)
    try:
        writer = SampleWriter(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the output ({exc.strerror or exc}); choose another --out") from None
    with writer:
        for batch in converter.convert(files, ledger):
            if isinstance(batch, list):
                writer.write_samples(batch)
            else:
                writer.write_table(batch)
    ledger.samples_out = writer.rows
    ledger.write(rejects_path(out))
    return ledger


def check_output(out: Path, inputs: list[Path]) -> None:
    """Refuse an --out that cannot be written, before any input is read: a folder, a path under a file,
    or one of the inputs (which the output would replace)."""
    for path in (out, rejects_path(out)):
        if path.is_dir():
            raise InputError(f"{path}: is a folder; --out takes the path of the .parquet file to write")
    if out.resolve() in {f.resolve() for f in inputs}:
        raise InputError(f"{out}: is one of the inputs; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out.parent}: cannot create the output folder ({exc.strerror or exc})") from None


def convert_in_worker(args: tuple[str, list[str], Path, ConvertOptions]) -> Ledger:
    """`run_conversion` in another process (`datamix convert --engine ray`): the ledger comes back."""
    return run_conversion(*args)
