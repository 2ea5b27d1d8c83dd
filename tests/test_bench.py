"""The benchmark command end to end, on the tiny checkpoint (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    for r in runs[1:]:  # products alone and the rest add up to generation, at any speed
        assert r["products_ms"] >= 0
        assert abs(r["products_ms"] + r["non_product_ms"]
                   - (r["talker_ms"] + r["code_predictor_ms"])) <= 0.3, r
    text = md.read_text()
    assert "## tiny custom_voice" in text and "| official" in text and "fused kernels" in text


def test_bench_avx2_cap_rows(tiny_custom_voice, tmp_path):
    """--avx2 adds rows run in a process capped to AVX2 (the CPU class says so)."""
    md, js = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "-m", "wyoming_qwen3_tts.dev.bench", "--size", "tiny", "--frames", "3",
         "--repeats", "1", "--threads", "1", "--official", "", "--dtypes", "int8",
         "--avx2", "int8", "--no-quality", "--out", str(md), "--json", str(js)],
        cwd=REPO, check=True, capture_output=True, timeout=300,
    )
    runs = json.loads(js.read_text())["tiny-custom_voice"]["runs"]
    assert [r["name"].endswith("[AVX2 cap]") for r in runs] == [False, True]
    assert "cpu=x86-avx2" in runs[1]["name"] and "vocoder=float32" in runs[1]["name"]
    assert "ATEN_CPU_CAPABILITY=avx2" in md.read_text()


def test_bench_times_an_outlier_variant(tiny_custom_voice, tmp_path):
    """--outlier-variant: the rows run on that variant, in a section of their own."""
    md, js = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "-m", "wyoming_qwen3_tts.dev.bench", "--size", "tiny", "--frames", "2",
         "--repeats", "1", "--threads", "1", "--official", "", "--dtypes", "auto",
         "--no-quality", "--outlier-variant", "amplify", "--out", str(md), "--json", str(js)],
        cwd=REPO, check=True, capture_output=True, timeout=300,
    )
    report = json.loads(js.read_text())["tiny-custom_voice-outliers-amplify"]
    assert report["outlier_variant"] == "amplify" and len(report["runs"]) == 1
    text = md.read_text()
    assert "on its outlier variant (amplify)" in text and "--outlier-variant amplify" in text


def test_section_tables_render():
    """The under-load and peers tables from results shaped like the workers' (no run)."""
    from wyoming_qwen3_tts.dev import peers

    row = {"ms_per_frame": 50.0, "talker_ms": 10.0, "code_predictor_ms": 20.0,
           "vocoder_ms": 15.0, "first_audio_s": 0.3}
    load = {"frames": 4, "rounds": 1, "threads": 2,
            "table": {f"busy {b}": {"a": {"ms_per_frame": 50.0 * (b + 1)}} for b in (0, 1, 2)}}
    text = "\n".join(peers.markdown_under_load(load))
    assert "| a | 50.0 | 100.0 | 2.00x | 150.0 | 3.00x |" in text
    versus = {"frames": 4, "rounds": 1, "table": {"1": {"ours": row, "vox": {
        **row, "ms_per_frame": 100.0}}}}
    assert "| vox | 1 | 100.0 | 10.0 | 20.0 | 15.0 | 0.3 | 2.00 | 1.00 | 1.00 | 1.00 |" in \
        "\n".join(peers.markdown_peers(versus))


def test_arm_prediction_takes_the_larger_bound_and_reads_count_frame_lines(tmp_path):
    from wyoming_qwen3_tts.dev import bench_arm

    row = {"dtype": "int8", "talker_scheme": "int8-wo-f32", "predictor_scheme": "int8-wo-f32",
           "instructions_per_frame": {"generation": 200e6, "talker": 50e6,
                                      "code_predictor": 150e6, "vocoder": 100e6},
           "weight_bytes_per_frame": {"generation": 1.0e9, "vocoder": 5e7}}
    saved = tmp_path / "counts.txt"
    saved.write_text("aarch64: qcount: 1 instructions\n" + json.dumps(row) + "\n")
    [read] = bench_arm.read_counts(saved, "a76")
    board, (ipc, cores, gbs) = bench_arm.PI5, bench_arm.PI5.low
    rate = ipc * cores * board.clock_ghz * 1e9
    memory_bound = 1.0e9 / (gbs * 1e9) + 100e6 / rate  # 1 GB at 10 GB/s outweighs 200 M ins.
    assert bench_arm.predict(read)["rtf_pessimistic"] == round(memory_bound / 0.08, 2)
    heavier = {**read, "instructions_per_frame": {**row["instructions_per_frame"],
                                                  "generation": 20e9}}
    assert bench_arm.predict(heavier)["rtf_pessimistic"] > 10 * memory_bound / 0.08
    table = bench_arm.markdown([read])
    assert any(line.startswith("| a76 (Raspberry Pi 5) | int8 |") for line in table)
    # what auto picks on each model's class is marked (int4 on a Pi 4 and 5)
    pi4 = {**bench_arm.read_counts(saved, "a72")[0], "dtype": "int4"}
    assert any(line.startswith("| a72 (Raspberry Pi 4) | int4 [auto] |")
               for line in bench_arm.markdown([pi4]))
    assert bench_arm.is_auto({**read, "dtype": "int4"}) and not bench_arm.is_auto(read)


def test_arm_spec_names_cpu_models():
    from wyoming_qwen3_tts.dev import bench_arm

    assert bench_arm.parse_spec("int4,int8") == [("a76", "int4,int8")]
    assert bench_arm.parse_spec("a76:int4,int8;a72:int8") == [("a76", "int4,int8"),
                                                              ("a72", "int8")]
    with pytest.raises(ValueError, match="unknown CPU model"):
        bench_arm.parse_spec("a53:int8")
