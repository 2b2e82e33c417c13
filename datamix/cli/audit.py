"""`datamix audit`: a released LLaVA mix file (llava_v1_5_mix665k.json) per source, checked against the
published counts, optionally against its image folder and against a datamix build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from datamix.cli import app, fails_cleanly
from datamix.errors import DatamixError, InputError


def _plain(table):
    """The table with rich markup escaped: released text ("[a dog]", "[x1, y1, x2, y2]") is shown as it is."""
    from dataclasses import replace

    from rich.markup import escape

    return replace(table, title=escape(table.title), note=escape(table.note),
                   rows=[[escape(cell) for cell in row] for row in table.rows])


class AuditFailed(DatamixError):
    """The file is not the published split, has malformed records, or misses images."""


@app.command()
@fails_cleanly
def audit(
    released: Annotated[Path, typer.Argument(help="A released LLaVA-format JSON list, e.g. llava_v1_5_mix665k.json.")],
    against: Annotated[Path | None, typer.Option(help="Compare record by record with this datamix build "
                                                 "(a mix folder).")] = None,
    image_root: Annotated[Path | None, typer.Option(help="LLaVA's image folder (playground/data): report images "
                                                    "missing under it.")] = None,
    expect: Annotated[Path | None, typer.Option(help="Reference counts to check (default: manifests/"
                                                "llava_v1_5_mix665k.json, the exact published split).")] = None,
    counts: Annotated[bool, typer.Option("--counts/--no-counts", help="Check the per-source counts.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every figure to this JSON file.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report into this folder.")] = None,
) -> None:
    """Per source: records, share, questions, prompt placement, answer casing, box formats; the count check.

    Exits 1 when a check fails: counts differ from the reference, malformed records, missing or unsafe images.
    """
    from datamix.audit import DEFAULT_REFERENCE, audit as run, failures
    from datamix.audit.tables import audit_tables, verdict
    from datamix.cli.stats import print_tables
    from datamix.stats.load import load_reference

    reference = None
    if counts:
        path = expect if expect is not None else DEFAULT_REFERENCE
        if expect is None and not path.is_file():
            raise InputError("the published counts (manifests/llava_v1_5_mix665k.json) are not next to this "
                             "installation; pass --expect FILE or --no-counts")
        reference = load_reference(path)
    result = run(released, reference, image_root=image_root, against=against)
    failed = failures(result)
    print_tables([_plain(t) for t in audit_tables(result)], verdict(result, failed))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {json_out}")
    if report is not None:
        from datamix.stats.report import write_audit_report

        typer.echo(f"wrote {write_audit_report(report, result)}")
    if failed:
        raise AuditFailed(f"{released}: " + "; ".join(failed))
