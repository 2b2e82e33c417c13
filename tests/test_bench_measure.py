"""bench/measure.py reports each job's own peak memory, not the one Linux carries over from its parent.

`ru_maxrss` survives fork and exec: in a benchmark run that first generated its inputs in the same
process, every job printed the parent's 3,676 MiB. The jobs here run under a parent that has grown
large first, exactly that situation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"
MIB = 2**20


def measured_under_a_large_parent(parent_mib: int, *job: str) -> dict:
    """Run `measure(*job)` from a process that first touches `parent_mib` MiB and keeps it."""
    script = (f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); from measure import measure; "
              f"block = bytearray({parent_mib} << 20); block[::4096] = b'x' * len(block[::4096]); "
              f"print(json.dumps(measure(*{list(job)!r})))")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_small_job_after_a_large_one_reports_a_small_peak():
    large = measured_under_a_large_parent(50, "hold", "400")
    small = measured_under_a_large_parent(600, "hold", "8")
    assert large["peak_rss_bytes"] > 400 * MIB
    assert small["peak_rss_bytes"] < 100 * MIB, small  # ru_maxrss said > 600 MiB here
    assert small["peak_rss_children_bytes"] == 0
    assert small["wall_s"] >= small["job_s"] > 0  # the caller's clock includes start-up


def test_a_worker_process_counts_for_itself_and_not_its_parent():
    result = measured_under_a_large_parent(600, "hold", "8", "200")
    assert 200 * MIB < result["peak_rss_children_bytes"] < 300 * MIB, result
    assert result["peak_rss_bytes"] < 100 * MIB
    assert result["peak_rss_total_bytes"] == result["peak_rss_bytes"] + result["peak_rss_children_bytes"]


def test_every_benchmark_script_parses_its_arguments():
    """`make bench` is not run in CI: at least every script must import and parse (a broken merge once left
    bench/run.py unparsable)."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench"
    for script in ("run.py", "fingerprint_bench.py", "decontam_bench.py", "hd_bench.py"):
        result = subprocess.run([sys.executable, str(bench / script), "--help"], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0 and "usage" in result.stdout, (script, result.stderr[-500:])
