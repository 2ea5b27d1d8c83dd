"""The benchmark's aarch64 section: guest instructions and weight bytes per 80 ms frame for
each ARM precision, counted under qemu-user (script/aarch64 --count-instructions running
script/aarch64.d/count_frame.py), and the Raspberry Pi real-time factor they predict.

Emulated wall times mean nothing, so the prediction is made from the two counts and written
assumptions (PI5 and PI4 below): a frame takes at least its instructions over the cores'
sustained instruction rate and at least its weight bytes over the memory bandwidth; the
larger bound is the frame's time (generation is a chain of single-token products, each bound
by one or the other), the vocoder's instructions are added.  A range is given: a pessimistic
and an optimistic set of assumptions.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..engine import precision

REPO = Path(__file__).resolve().parents[2]
CPU_CLASS = {"a76": precision.ARM_DOTPROD, "a72": precision.ARM_V80}  # qemu model -> class


@dataclass(frozen=True)
class Board:
    """What a frame's counts are divided by.  `ipc`: instructions per cycle per core in these
    NEON kernels; `cores`: cores' worth of parallel work the thread pool gets (4 cores, not
    perfectly shared); `bandwidth_gbs`: sustained read bandwidth."""

    name: str
    cpu: str
    clock_ghz: float
    low: tuple[float, float, float]  # (ipc, cores, bandwidth GB/s), pessimistic
    high: tuple[float, float, float]  # optimistic

    def frame_seconds(self, instructions: float, weight_bytes: float, vocoder: float,
                      ipc: float, cores: float, bandwidth_gbs: float) -> float:
        rate = ipc * cores * self.clock_ghz * 1e9
        generation = max(instructions / rate, weight_bytes / (bandwidth_gbs * 1e9))
        return generation + vocoder / rate


# Raspberry Pi 5: 4x Cortex-A76 at 2.4 GHz, LPDDR4X-4267 (~17 GB/s peak, ~10 GB/s sustained
# reads measured by others); an out-of-order A76 retires 1-2 NEON instructions per cycle in
# matrix kernels.  Pi 4: 4x Cortex-A72 at 1.8 GHz, LPDDR4-3200 (~4-6 GB/s sustained).
PI5 = Board("Raspberry Pi 5", "a76", 2.4, low=(1.0, 2.5, 10.0), high=(2.0, 3.5, 17.0))
PI4 = Board("Raspberry Pi 4", "a72", 1.8, low=(0.8, 2.5, 4.0), high=(1.5, 3.5, 6.0))
BOARDS = {"a76": PI5, "a72": PI4}


def parse_spec(spec: str) -> list[tuple[str, str]]:
    """`--arm`'s value: `int4,int8` (Cortex-A76) or per CPU model, `a76:int4,int8;a72:int8`."""
    parts = []
    for item in filter(None, (p.strip() for p in spec.split(";"))):
        cpu, _, dtypes = item.rpartition(":")
        cpu = cpu or "a76"
        if cpu not in BOARDS:
            raise ValueError(f"unknown CPU model {cpu!r} (one of {', '.join(BOARDS)})")
        parts.append((cpu, dtypes))
    return parts


def is_auto(row: dict) -> bool:
    """Whether the row's --dtype is what `auto` picks on its CPU model's class."""
    return row["dtype"] == "auto" or precision.AUTO[CPU_CLASS[row["cpu"]]] == row["dtype"]


def count(cpu: str, size: str, model_type: str, dtypes: str, frames: int) -> list[dict]:
    """Runs count_frame.py emulated (needs root and script/aarch64's tree; minutes)."""
    done = subprocess.run(
        ["script/aarch64", "--cpu", cpu, "--count-instructions", "--", "python3",
         "script/aarch64.d/count_frame.py", "--size", size, "--type", model_type,
         "--dtypes", dtypes, "--frames", str(frames)],
        cwd=REPO, stdout=subprocess.PIPE, text=True, check=True)
    return [dict(json.loads(line), cpu=cpu) for line in done.stdout.splitlines()
            if line.startswith("{")]


def read_counts(path: Path, cpu: str) -> list[dict]:
    """count_frame.py's JSON lines saved from an earlier run (its stdout)."""
    return [dict(json.loads(line), cpu=cpu) for line in path.read_text().splitlines()
            if line.startswith("{")]


def predict(row: dict) -> dict:
    board = BOARDS[row["cpu"]]
    ins, wb = row["instructions_per_frame"], row["weight_bytes_per_frame"]
    rtf = [board.frame_seconds(ins["generation"], wb["generation"], ins["vocoder"], *a) / 0.08
           for a in (board.low, board.high)]
    return {"board": board.name, "rtf_pessimistic": round(rtf[0], 2),
            "rtf_optimistic": round(rtf[1], 2)}


def markdown(rows: list[dict]) -> list[str]:
    lines = [
        "", "### aarch64 under emulation: per-frame work and a predicted Raspberry Pi RTF", "",
        "Counted by `script/aarch64 --cpu CPU --count-instructions -- python3 "
        "script/aarch64.d/count_frame.py` (qemu-user with the qcount plugin, one torch thread, "
        "greedy, end of speech disabled, after a warm-up utterance; the vocoder decodes the "
        "frames as one chunk after a warm chunk). Guest instructions are what the board "
        "executes; emulated wall times are not shown. Weight bytes: talker and code-predictor "
        "weights read per frame (the vocoder's weights are read once per chunk of 16 frames). "
        "Predicted frame time = max(generation instructions / (IPC x cores x clock), weight "
        "bytes / bandwidth) + vocoder instructions / (IPC x cores x clock); RTF = that / 80 ms.",
        "",
        "| CPU model | --dtype | talker / code predictor | M instructions per frame: talker "
        "| code predictor | vocoder | generation MB/frame | predicted RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ins, wb, p = r["instructions_per_frame"], r["weight_bytes_per_frame"], predict(r)
        lines.append(
            f"| {r['cpu']} ({p['board']}) | {r['dtype']}{' [auto]' if is_auto(r) else ''} "
            f"| {r['talker_scheme']} / "
            f"{r['predictor_scheme']} | {ins['talker'] / 1e6:.0f} "
            f"| {ins['code_predictor'] / 1e6:.0f} | {ins['vocoder'] / 1e6:.0f} "
            f"| {wb['generation'] / 1e6:.0f} | {p['rtf_optimistic']} - {p['rtf_pessimistic']} |")
    lines += ["", "Assumptions: " + "; ".join(
        f"{b.name}: {b.clock_ghz} GHz, pessimistic IPC {b.low[0]}, {b.low[1]} cores' worth, "
        f"{b.low[2]:g} GB/s; optimistic IPC {b.high[0]}, {b.high[1]} cores' worth, "
        f"{b.high[2]:g} GB/s" for b in (PI5, PI4)) + ". None of it is measured on a board."]
    return lines
