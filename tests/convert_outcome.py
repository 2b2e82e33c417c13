"""What `datamix convert` must do with any input, checked the same way by the malformed-input tests.

Either it fails with exit code 1 and one line (`error: <file>: <what is wrong>...`, never the generic
"unexpected" handler), or it exits 0 with counts that add up (records in = used + rejected), a Parquet file
polars can read, and one ledger line, with an id and a reason code, per rejected record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from datamix.cli import app

REPORT = re.compile(r"([\d,]+) records in -> ([\d,]+) samples out \(([\d,]+) records used\), ([\d,]+) rejected")
REASON = re.compile(r"[a-z][a-z_]*(:|\Z)")
runner = CliRunner()


@dataclass
class Outcome:
    exit_code: int
    lines: list[str]
    records_in: int = 0
    samples_out: int = 0
    used: int = 0
    rejects: list[dict] | None = None

    @property
    def error(self) -> str:
        assert self.exit_code == 1, self.lines
        return self.lines[0]


def run_convert(source: str, inputs: list[Path], out: Path, *options: str) -> Outcome:
    """Run the command in-process and check the promises that hold for every input."""
    result = runner.invoke(app, ["convert", source, *map(str, inputs), "--out", str(out), *options])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
    if result.exit_code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert "(unexpected; run with --debug" not in result.output and "Traceback" not in result.output, result.output
        return Outcome(1, lines)
    counts = REPORT.search(result.output)
    assert counts, result.output
    n_in, n_out, used, rejected = (int(g.replace(",", "")) for g in counts.groups())
    assert n_in == used + rejected, result.output  # nothing lost
    assert pl.read_parquet(out).height == n_out  # every string in the output is valid UTF-8
    ledger = out.with_name(out.name.removesuffix(".parquet") + ".rejects.jsonl")
    # split on "\n" only: str.splitlines also splits on U+0085 and U+2028, which JSON keeps raw in strings
    rejects = [json.loads(line) for line in ledger.read_text(encoding="utf-8").split("\n") if line]
    assert len(rejects) == rejected
    for entry in rejects:
        assert entry["id"] not in (None, "") and REASON.match(entry["reason"]), entry
    return Outcome(0, lines, n_in, n_out, used, rejects)
