"""`datamix convert`: official files of one source -> one normalized Parquet file + its rejects ledger."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from datamix.converters import ConvertOptions, get_converter
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
    ledger = Ledger(source=converter.id)
    with SampleWriter(out) as writer:
        for batch in converter.convert(files, ledger):
            if isinstance(batch, list):
                writer.write_samples(batch)
            else:
                writer.write_table(batch)
    ledger.samples_out = writer.rows
    ledger.write(rejects_path(out))
    return ledger
