"""The soak script in its short form: good and bad clients at once, no audio lost, no crash."""

from __future__ import annotations

import io

from wyoming_qwen3_tts.dev.soak import run_soak


def test_short_soak_loses_nothing(tiny_custom_voice):
    out = io.StringIO()
    report = run_soak(requests=30, concurrency=4, seconds=120, model=str(tiny_custom_voice),
                      seed=7, timeout=60, out=out)
    text = out.getvalue()
    assert report.launched == 30, text
    assert report.lost == 0 and report.failed == 0, text
    assert report.received_bytes == report.expected_bytes > 0, text
    assert not report.crashed and report.exit_code == 0, text
    assert sum(report.by_kind[k] for k in ("hangup", "garbage", "stall")) > 0, text
    assert report.ok and "RESULT: PASS" in text
