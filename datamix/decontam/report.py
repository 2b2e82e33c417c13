"""The report's decontamination section: counts per evaluation set, then example pairs side by side.

Each pair shows the training image beside the evaluation image it matched (or, for dedupe, the sample kept
in its place), with the tier and the pHash distance, so a person can judge whether a threshold is right.
The thumbnails are the data URIs `decontamination.json` holds (made when the samples were removed).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from datamix.mixdir import DECONTAMINATION
from datamix.stats.report import pairs_html

def load_decontamination(target: Path) -> dict | None:
    """A mix folder's decontamination.json, or None (no samples were removed by exclude / dedupe)."""
    path = Path(target) / DECONTAMINATION
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def section_html(record: dict) -> str:
    parts = ["<h2>Decontamination and dedupe</h2>"]
    decon = record.get("decontaminate")
    if decon:
        phash = f", pHash within {decon['phash_max_distance']} bits" if decon.get("phash_max_distance") is not None \
            else ""
        parts.append(f"<p>Tiers: {html.escape(', '.join(decon['tiers']))}{phash}.</p>")
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(s['kind'])}</td><td>{s['images']:,}</td>"
                       f"<td>{sum(s['removed'].values()):,}</td>"
                       f"<td>{html.escape(_tally(s['removed_by_tier']))}</td></tr>"
                       for name, s in decon["eval_sets"].items())
        parts.append("<table><tr><th>evaluation set</th><th>kind</th><th>images</th><th>samples removed</th>"
                     f"<th>by tier</th></tr>{rows}</table>")
    dedupe = record.get("dedupe")
    if dedupe:
        removed = {name: _tally(t) for name, t in dedupe["removed"].items() if t}
        parts.append(f"<p>Dedupe (images: {html.escape(str(dedupe['images']))}, conversations: "
                     f"{dedupe['conversations']}): "
                     f"{html.escape('; '.join(f'{k} {v}' for k, v in removed.items()) or 'nothing removed')}.</p>")
    if record.get("examples"):
        parts.append(pairs_html("Example pairs: the removed sample (left) beside what it matched",
                                [_pair(p) for p in record["examples"]]))
    return "".join(parts)


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def _pair(pair: dict) -> dict:
    """One removal in the shape of `stats.report.pairs_html`."""
    def side(s: dict) -> dict:
        return {"uri": s.get("thumbnail"), "caption": s["name"]}

    where = "dedupe" if pair["stage"] == "dedupe" else pair["group"]
    return {"label": f"{where}: {pair['tier']}, distance {pair['distance']}", "left": side(pair["sample"]),
            "right": side(pair["match"])}
