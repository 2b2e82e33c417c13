"""`datamix stats --report`: the HTML page renders its charts in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

from typer.testing import CliRunner

from datamix.cli import app
from tests.test_stats import write_mix


def test_report_renders_its_charts(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed for this test: apt-get install chromium"
    mix = write_mix(tmp_path / "fixmix")
    result = CliRunner().invoke(app, ["stats", str(mix), "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    page = tmp_path / "report" / "index.html"
    html = page.read_text()
    charts = re.findall(r'<img alt="([a-z_]+)" src="data:image/png;base64,([^"]+)"', html)
    assert [name for name, _ in charts] == ["shares", "lengths", "yes_no", "turns"]
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for _, data in charts)  # self-contained
    assert (tmp_path / "report" / "shares.png").is_file() and "fixmix: mixture" in html
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert 'data-charts="loaded"' in dom.stdout, dom.stderr[-2000:]  # every <img> decoded, naturalWidth > 0
