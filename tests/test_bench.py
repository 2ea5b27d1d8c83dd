"""The benchmark command end to end, on the tiny checkpoint (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from wyoming_qwen3_tts.dev.checkpoints import REPO


def test_bench_writes_both_reports(tiny_custom_voice, tmp_path):
    md, js = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "-m", "wyoming_qwen3_tts.dev.bench", "--size", "tiny", "--frames", "4",
         "--repeats", "1", "--threads", "1", "--official", "float32",
         "--dtypes", "int8-torch-ops,int8", "--no-quality", "--out", str(md), "--json", str(js)],
        cwd=REPO, check=True, capture_output=True, timeout=300,
    )
    runs = json.loads(js.read_text())["tiny-custom_voice"]["runs"]
    names = [r["name"] for r in runs]
    assert names[0].startswith("official") and len(names) == 3
    assert "torch ops only" in names[1] and "fused kernels" not in names[1]
    assert "fused kernels" in names[2]
    assert all(r["frames"] == 4 and r["rtf"] > 0 for r in runs[1:])
    text = md.read_text()
    assert "## tiny custom_voice" in text and "| official" in text and "fused kernels" in text
