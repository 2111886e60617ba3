"""The benchmark runs end to end at a tiny size and writes every figure it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_writes_the_expected_figures(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "3", "--no-reader", "--growth", "200,400",
         "--classify-stories", "10", "--out", str(out), "--cache", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,  # the learned models classify every story: a loaded machine needs the margin
    )
    assert run.returncode == 0, run.stderr[-3000:]
    [path] = list(out.glob("*.json"))
    figures = json.loads(path.read_text())

    size = figures["sizes"]["3"]
    monitor = size["monitor"]
    assert monitor["full"]["new_stories"] > 0 and monitor["full"]["stories_per_s"] > 0
    assert monitor["full"]["errors"] == 0
    # the second cycle is answered 304, the third with unchanged bytes: nothing new either time
    assert monitor["not_modified"]["not_modified"] == 3 and monitor["not_modified"]["new_stories"] == 0
    assert monitor["unchanged"]["not_modified"] == 3 and monitor["unchanged"]["new_stories"] == 0
    assert monitor["peak_rss_mb"] > 10
    assert monitor["alerts"]["failed"] == 0
    assert size["bare"]["full"]["new_stories"] > 0
    # the process-pool bare loop stores what the threaded one stores; memory counts its parser processes
    assert size["bare_pool"]["full"]["new_stories"] == size["bare"]["full"]["new_stories"]
    assert size["bare_pool"]["peak_rss_sum_mb"] >= size["bare_pool"]["peak_rss_mb"] > 10
    assert monitor["peak_rss_sum_mb"] >= monitor["peak_rss_mb"]  # equal when no worker processes run
    assert "reader" not in size
    assert figures["keywords"]["watchlists_3"]["watchlists"] == 3
    assert figures["keywords"]["watchlists_100"]["watchlists"] == 100
    assert figures["keywords"]["watchlists_100"]["stories_per_s"] > 0
    assert figures["keywords"]["watchlists_100_adversarial"]["watchlists"] == 100
    assert 0 <= figures["keywords"]["watchlists_100"]["busiest_share"] <= 1
    assert "skipped" in figures["embeddings"] or figures["embeddings"]["stories_per_s"] > 0
    assert set(figures["growth"]) == {"200", "400"}
    assert all(g["new_stories"] > 0 for g in figures["growth"].values())

    derived = figures["derived"]
    assert derived["sizes"]["3"]["vs_bare"] > 0
    assert derived["sizes"]["3"]["not_modified_speedup"] > 1
    assert derived["sizes"]["3"]["db_bytes_per_10k_stories"] > 0
    assert derived["sizes"]["3"]["vs_bare_pool"] > 0
    assert {t["target"].split(" (")[0] for t in derived["targets"]} >= {
        "end to end vs bare, 4 threads", f"end to end vs bare, {figures['meta']['processes']} processes",
        "304 cycle speed-up", "peak RSS MB, all processes", "keyword throughput, 100 realistic vs 3 watchlists"}
    assert "Targets" in run.stdout
    assert sum(figures["profile"]["shares"].values()) > 0.99
