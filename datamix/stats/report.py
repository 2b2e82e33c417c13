"""`--report DIR`: one self-contained HTML page (charts embedded as PNG data URIs, also saved beside it)
plus the same tables as the terminal. A small inline script marks the page `data-charts="loaded"` once
every chart image has decoded, which the headless-browser test checks."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from datamix.images import decode_image
from datamix.stats import charts
from datamix.stats.tables import Table, compare_table, duplicates_table, overlap_note, stats_tables

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 .2em;font-size:14px}th,td{padding:3px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{border-bottom:2px solid #444}tr:last-child td{border-top:1px solid #888;font-weight:600}
.note{color:#666;font-size:13px;margin-bottom:1.5em}img{max-width:100%;display:block;margin:1em 0}
.pairs{display:flex;flex-wrap:wrap;gap:12px}.pair{border:1px solid #ccc;padding:6px;font-size:12px;max-width:360px}
.pair img{display:inline-block;margin:0 4px 0 0;vertical-align:top}.pair .label{font-weight:600}"""
THUMBNAIL = 160  # px, the longer side of an example image on a page
SCRIPT = """<script>
function chartsReady(){const imgs=[...document.images];
 if(imgs.every(i=>i.complete)){document.body.dataset.charts=imgs.every(i=>i.naturalWidth>0)?'loaded':'broken';}
 else setTimeout(chartsReady,20);}
window.addEventListener('load',chartsReady);
</script>"""


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f'<div class="note">{html.escape(table.note)}</div>' if table.note else ""
    return f"<h3>{html.escape(table.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"


def chart_pngs(stats: dict, other: dict | None = None) -> dict[str, bytes]:
    series = [(stats["name"], {k: v["share"] for k, v in stats["sources"].items()})]
    if other is not None:
        series.append((other["name"], {k: v["share"] for k, v in other["sources"].items()}))
    out = {"shares.png": charts.shares(series)}
    if "histograms" in stats:
        out["lengths.png"] = charts.lengths(stats["histograms"], stats["length_unit"])
    out["yes_no.png"] = charts.yes_no(stats)
    if "histograms" in stats:
        out["turns.png"] = charts.turns(stats["histograms"])
    return out


def thumbnail_uri(data: bytes | str | None, relative: str, max_pixels: int) -> str | None:
    """A small JPEG data URI of an image for a report page, or None if it cannot be shown."""
    if not isinstance(data, bytes):
        return None
    img = decode_image(data, relative, max_pixels)
    if isinstance(img, str):
        return None
    with img:
        small = img.convert("RGB")
        small.thumbnail((THUMBNAIL, THUMBNAIL))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=80, optimize=False, progressive=False)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def pairs_html(title: str, pairs: list[dict]) -> str:
    """Image pairs side by side, for a person to judge a threshold: each pair is {"label", "left", "right"},
    a side being {"uri" (a data URI or None), "caption"}."""
    def side(s: dict) -> str:
        img = f'<img alt="" src="{s["uri"]}">' if s.get("uri") else "<em>(no image)</em>"
        return f"<div>{img}<div>{html.escape(s['caption'])}</div></div>"

    items = "".join(f'<div class="pair"><div class="label">{html.escape(p["label"])}</div>'
                    f'<div style="display:flex;gap:6px">{side(p["left"])}{side(p["right"])}</div></div>'
                    for p in pairs)
    return f"<h3>{html.escape(title)}</h3><div class=\"pairs\">{items or '<em>none</em>'}</div>"


def duplicate_pairs_html(dup: dict) -> str:
    def side(use: dict, uri: str | None) -> dict:
        return {"uri": uri, "caption": f"{use['source']} {use['key']}: {use['path']}"}

    pairs = [{"label": f"distance {e['distance']}", "left": side(e["a"], e["a_thumbnail"]),
              "right": side(e["b"], e["b_thumbnail"])} for e in dup["examples"]]
    return pairs_html(f"near-duplicate examples (up to {dup['max_distance']} bits, a few at each distance)", pairs)


def write_report(out_dir: str | Path, stats: dict, comparison: dict | None = None, other: dict | None = None,
                 against: dict | None = None, duplicates: dict | None = None,
                 decontamination: dict | None = None) -> Path:
    """Write DIR/index.html (self-contained), DIR/*.png and DIR/stats.json; return the page's path.
    `decontamination`: a mix's decontamination.json, shown as counts and example pairs."""
    intro = (f"{stats['samples']:,} samples ({html.escape(stats['kind'])}); lengths in "
             f"{html.escape(stats['length_unit'])}{' (' + html.escape(stats['tokenizer']) + ')' if stats['tokenizer'] else ''}."
             f" {html.escape(overlap_note(stats))}")
    tables = stats_tables(stats) + [compare_table(c) for c in (comparison, against) if c is not None]
    extra = ""
    if duplicates is not None:
        tables.append(duplicates_table(duplicates, list(stats["sources"])))
        extra = duplicate_pairs_html(duplicates)
    if decontamination is not None:
        from datamix.decontam.report import section_html

        extra += section_html(decontamination)
    data = stats if duplicates is None else stats | {"duplicate_images": duplicates}
    return write_page(out_dir, f"datamix stats: {stats['name']}", intro, chart_pngs(stats, other), tables,
                      "stats.json", data, extra)


def write_audit_report(out_dir: str | Path, result: dict) -> Path:
    """`datamix audit --report DIR`: the audit's tables and a shares chart (released vs the reference counts)
    on the same kind of page as the stats report, with DIR/audit.json."""
    from datamix.audit.tables import audit_tables, verdict
    from datamix.audit import failures

    series = [(result["file"], {c: b["share"] for c, b in result["classes"].items()})]
    counts = result["counts"]
    if counts is not None and counts["total"]["expected"]:
        expected = counts["total"]["expected"]
        shares = {c: (r["expected"] or 0) / expected for c, r in counts["classes"].items()}
        series.append((counts["reference"], shares))
    intro = f"{result['records']:,} records. {html.escape(verdict(result, failures(result)))}"
    failed = "".join(f"<li>{html.escape(f)}</li>" for f in failures(result))
    return write_page(out_dir, f"datamix audit: {result['file']}", intro + (f"<ul>{failed}</ul>" if failed else ""),
                      {"shares.png": charts.shares(series)}, audit_tables(result), "audit.json", result)


def write_page(out_dir: str | Path, title: str, intro_html: str, pngs: dict[str, bytes], tables: list[Table],
               json_name: str, data: dict, extra_html: str = "") -> Path:
    """DIR/index.html (charts embedded as data URIs, then the tables, then `extra_html`), DIR/*.png and
    DIR/<json_name>."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, png in pngs.items():
        (out / name).write_bytes(png)
    parts = [f"<h1>{html.escape(title)}</h1>", f"<p>{intro_html}</p>"]
    for name, png in pngs.items():
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        parts.append(f'<img alt="{name[:-4]}" src="{uri}">')
    parts += [html_table(t) for t in tables]
    parts.append(extra_html)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style>{SCRIPT}</head><body>{''.join(parts)}</body></html>")
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / json_name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out / "index.html"
