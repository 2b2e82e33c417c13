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

STYLE = """.pairs td{vertical-align:top;text-align:left}.pairs img{max-width:160px;max-height:160px;margin:0}
.pairs .name{font-size:12px;color:#444;max-width:180px;overflow-wrap:anywhere}"""


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
                       f"<td>{sum(s['removed'].values()):,}</td><td>{html.escape(_tally(s['removed_by_tier']))}</td></tr>"
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
        parts.append("<h3>Example pairs</h3><table class='pairs'><tr><th>training sample</th><th>matched</th>"
                     "<th>tier</th><th>distance</th></tr>" + "".join(_pair(p) for p in record["examples"]) + "</table>")
    return f"<style>{STYLE}</style>" + "".join(parts)


def _tally(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def _pair(pair: dict) -> str:
    return (f"<tr><td>{_image(pair['sample'])}</td><td>{_image(pair['match'])}</td>"
            f"<td>{html.escape(pair['tier'])}</td><td>{pair['distance']}</td></tr>")


def _image(side: dict) -> str:
    thumbnail = side.get("thumbnail")
    picture = (f'<img alt="{html.escape(side["name"])}" src="{html.escape(thumbnail)}">' if thumbnail
               else "<em>(no image)</em>")
    return f"{picture}<div class='name'>{html.escape(side['name'])}</div>"
