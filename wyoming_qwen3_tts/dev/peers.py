"""Engines side by side in one run: our engine under several settings, other CPU engines for
Qwen3-TTS (peers), busy neighbours.

Each engine runs in a worker process of its own (its environment fixed before torch or the
peer loads: ISA caps, OpenMP policy, thread count), loads once, then answers one JSON command
per line on stdin with one JSON result per line on stdout: `{"frames": N}` speaks the
benchmark text for exactly N frames and reports the times.  The parent sends the same command
to every worker in turn, round after round (interleaved: a neighbour's burst or a clock change
hits every worker alike), with zero, one or two busy neighbour processes started by itself,
and reports medians.  Only one worker computes at a time.

Peers are installed into .cache/peers (outside the package; git-ignored with .cache/), with
their own tools, and converted from the same random checkpoint by their own converters:

- vox-tts (PyPI wheel, C++ engine with its own thread pool): its own venv, `python -m vox
  build` (q8 and q4), end of speech disabled with its VOX_DEBUG_NO_EOS switch and the frame
  count fixed with `max_frames`.  Its worker is vox_worker.py, run by the peer's Python.

    python -m wyoming_qwen3_tts.dev.peers --frames 25 --rounds 5   # our engine against vox
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger("peers")
REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / ".cache" / "peers"
VOX_VERSION = "0.19.5"

# The AVX2 cap: every library that can be capped (precision.AVX2_ENV's torch, fbgemm, MKL and
# oneDNN) plus the fused kernels compiled for Haswell.  What cannot be capped: glibc's string
# functions (they pick AVX-512 by CPUID; ~nothing of a frame) and the Python interpreter.
KERNELS_MARCH_ENV = "QWEN3_TTS_KERNELS_MARCH"


AVX2_NOTE = (
    "Rows marked [AVX2 cap]: this machine capped to AVX2 in every library that allows it, no "
    "native bf16 assumed (the CPU class is x86-avx2: float32 vocoder): ATEN_CPU_CAPABILITY=avx2 "
    "(torch's kernels), ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN: convolutions; its verbose output "
    "confirms 'isa:Intel AVX2'), MKL_ENABLE_INSTRUCTIONS=AVX2 (MKL's GEMM), "
    "FBGEMM_ENABLE_INSTRUCTIONS=AVX2 (fbgemm's int8 products), the fused kernels compiled with "
    "-march=haswell (QWEN3_TTS_KERNELS_MARCH). Not capped: glibc's libm and string functions "
    "(picked by CPUID; a negligible share of a frame) and the memory system (this machine's "
    "bandwidth is higher than an N100's). An N100 has 4 cores at a lower clock: these rows show "
    "the instruction set's cost, not an N100's speed.")


def avx2_env() -> dict[str, str]:
    from ..engine.precision import AVX2_ENV

    return {**AVX2_ENV, KERNELS_MARCH_ENV: "haswell"}


# -- busy neighbours ---------------------------------------------------------------------------
BUSY_LOOP = "import os\nos.nice(0)\nwhile True:\n    pass\n"


@contextmanager
def neighbours(count: int):
    """`count` CPU-bound processes (one core's worth each) for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        time.sleep(0.3 if count else 0)  # let them reach the CPU
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


# -- workers -----------------------------------------------------------------------------------
@dataclass
class Worker:
    """One engine in a process of its own; `ask` sends a command and returns its result."""

    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True, cwd=REPO)

    def ready(self) -> dict:
        self.info = self._read()
        return self.info

    def _read(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} ended (exit {self.proc.wait()})")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, command: dict) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ours(name: str, dtype: str = "auto", threads: int = 2, env: dict | None = None,
         size: str = "0.6b", model_type: str = "custom_voice") -> Worker:
    cmd = [sys.executable, "-m", "wyoming_qwen3_tts.dev.peers", "--serve-ours", "--dtype", dtype,
           "--threads", str(threads), "--size", size, "--type", model_type]
    return Worker(name, cmd, dict(env or {}))


def vox(name: str, quant: str = "q8", threads: int = 2, env: dict | None = None,
        size: str = "0.6b", model_type: str = "custom_voice") -> Worker:
    python, model = install_vox(size, model_type, quant)
    cmd = [str(python), str(Path(__file__).with_name("vox_worker.py")), str(model),
           str(threads)]
    return Worker(name, cmd, {"VOX_DEBUG_NO_EOS": "1", **(env or {})})


def checkpoint(size: str, model_type: str) -> Path:
    from .checkpoints import BUILDER_VERSION, build_checkpoint

    folder = REPO / ".cache" / "devmodels" / f"{size}-{model_type}-v{BUILDER_VERSION}"
    if not folder.is_dir():
        build_checkpoint(folder, model_type, size)
    return folder


def install_vox(size: str, model_type: str, quant: str) -> tuple[Path, Path]:
    """vox-tts in its own venv under .cache/peers, and the checkpoint converted by its own
    `vox build`; returns (its python, the .tmod)."""
    venv = PEERS / f"vox-{VOX_VERSION}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"vox-tts=={VOX_VERSION}"],
                       check=True)
    source = checkpoint(size, model_type)
    model = PEERS / f"vox-{source.name}.{quant}.tmod"
    if not model.is_file():
        tmp = model.with_suffix(".tmp")
        subprocess.run([str(python), "-m", "vox", "build", "--model", str(source),
                        "--quant", quant, "--no-hash", "-o", str(tmp)], check=True)
        os.replace(tmp, model)
    return python, model


def start_all(workers: list[Worker]) -> None:
    """Start and load every worker, one at a time (loading is the heavy part)."""
    for w in workers:
        _LOGGER.info("Loading %s", w.name)
        w.start()
        w.ready()


def interleaved(workers: list[Worker], frames: int, rounds: int, busy: int = 0) -> dict:
    """Median results per worker over `rounds` rounds, each worker once per round in turn,
    with `busy` neighbours running through all of it."""
    runs: dict[str, list[dict]] = {w.name: [] for w in workers}
    with neighbours(busy):
        for r in range(rounds):
            order = workers if r % 2 == 0 else workers[::-1]  # no one always goes first
            for w in order:
                runs[w.name].append(w.ask({"frames": frames}))
    return {name: summarize(results) for name, results in runs.items()}


def summarize(results: list[dict]) -> dict:
    keys = [k for k, v in results[0].items() if isinstance(v, (int, float))]
    out = {k: round(statistics.median(r[k] for r in results if k in r), 2) for k in keys}
    out["rounds"] = len(results)
    return out


# -- benchmark sections (bench.py --under-load / --peers) -------------------------------------
TODAY_ENV = {"GOMP_SPINCOUNT": "300000", "QWEN3_TTS_ADAPT_THREADS": "0"}  # before threads.py


def under_load(frames: int, rounds: int, threads: int = 2, size: str = "0.6b",
               model_type: str = "custom_voice") -> dict:
    """Our engine (auto precision) with the default thread policy and with the policy before
    it (libgomp's default spin, a fixed thread count), quiet and with one and two busy
    neighbour processes started here; interleaved rounds, medians."""
    workers = [ours("default (bounded spin, adaptive threads)", threads=threads, size=size,
                    model_type=model_type),
               ours("before (libgomp spin 300000, fixed threads)", threads=threads,
                    env=TODAY_ENV, size=size, model_type=model_type),
               ours("1 thread, fixed", threads=1, env={"QWEN3_TTS_ADAPT_THREADS": "0"},
                    size=size, model_type=model_type)]
    try:
        start_all(workers)
        table = {f"busy {busy}": interleaved(workers, frames, rounds, busy)
                 for busy in (0, 1, 2)}
    finally:
        for w in workers:
            w.stop()
    return {"frames": frames, "rounds": rounds, "threads": threads, "table": table}


def against_peers(frames: int, rounds: int, size: str = "0.6b",
                  model_type: str = "custom_voice") -> dict:
    """Our engine (auto) against vox-tts (q8 and q4) at 1 and 2 threads, interleaved."""
    table = {}
    for threads in (1, 2):
        fixed = {"QWEN3_TTS_ADAPT_THREADS": "0"}
        workers = [ours(f"ours auto, {threads} thread(s)", threads=threads, env=fixed,
                        size=size, model_type=model_type),
                   vox(f"vox-tts {VOX_VERSION} q8, {threads} thread(s)", "q8", threads,
                       size=size, model_type=model_type),
                   vox(f"vox-tts {VOX_VERSION} q4, {threads} thread(s)", "q4", threads,
                       size=size, model_type=model_type)]
        try:
            start_all(workers)
            table[threads] = interleaved(workers, frames, rounds)
        finally:
            for w in workers:
                w.stop()
    return {"frames": frames, "rounds": rounds, "table": table}


COMPONENTS = ("ms_per_frame", "talker_ms", "code_predictor_ms", "vocoder_ms", "first_audio_s")


def markdown_under_load(section: dict) -> list[str]:
    rows = section["table"]
    names = list(rows["busy 0"])
    lines = ["", "### Under load (busy neighbour processes started by the benchmark)", "",
             f"Median ms per frame of {section['frames']} forced frames (whole utterance: "
             f"prefill, generation, vocoder) over {section['rounds']} interleaved rounds; "
             f"at most {section['threads']} torch threads; 'busy N' = N CPU-bound Python "
             "processes (one core each) running throughout. Ratio = against the same "
             "configuration quiet. Other processes on the machine (other test runs) count as "
             "load too: 'busy 0' is only as quiet as the machine was.", "",
             "| configuration | busy 0 ms/frame | busy 1 | ratio | busy 2 | ratio |",
             "|---|---|---|---|---|---|"]
    for n in names:
        q, one, two = (rows[f"busy {b}"][n]["ms_per_frame"] for b in (0, 1, 2))
        lines.append(f"| {n} | {q} | {one} | {one / q:.2f}x | {two} | {two / q:.2f}x |")
    return lines


def markdown_peers(section: dict) -> list[str]:
    lines = ["", "### Against other CPU engines (same random checkpoint, same run)", "",
             f"{section['frames']} frames forced (end of speech disabled in each engine), "
             f"medians of {section['rounds']} interleaved rounds, each engine in its own "
             "process, converted from the same checkpoint by its own tools (nothing of theirs "
             "is in this repository: `python -m wyoming_qwen3_tts.dev.peers` installs them into "
             ".cache/peers). Per-component times are each engine's own timers. Ratio = the "
             "peer's time / ours (above 1: we are faster).", "",
             "| engine | threads | ms/frame | talker ms | code predictor ms | vocoder ms "
             "| first audio s | ratio total | ratio talker | ratio code predictor "
             "| ratio vocoder |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for threads, rows in section["table"].items():
        ours_row = next(v for k, v in rows.items() if k.startswith("ours"))
        for name, r in rows.items():
            ratios = [r[k] / ours_row[k] if ours_row.get(k) else float("nan")
                      for k in ("ms_per_frame", "talker_ms", "code_predictor_ms",
                                "vocoder_ms")]
            lines.append(f"| {name} | {threads} | " + " | ".join(
                str(r.get(k, "")) for k in COMPONENTS) + " | "
                + " | ".join(f"{x:.2f}" for x in ratios) + " |")
    return lines


# -- our worker ----------------------------------------------------------------------------------
def serve_ours(dtype: str, threads: int, size: str, model_type: str) -> None:
    """The worker side for our engine: load, then one utterance per command line."""
    logging.basicConfig(level=logging.WARNING)
    from ..contract import StreamStats
    from ..engine.engine import Engine
    from .bench import TEXT, Timers, timed_engine

    engine = Engine.load(str(checkpoint(size, model_type)), data_dir=REPO / ".cache",
                         dtype=dtype, threads=threads)
    engine.generator.eos = -1  # never stop early
    voice: dict[str, Any] = {"speaker": engine.speakers[0]} if engine.speakers else {}
    for _ in engine.stream(TEXT, language="english", max_frames=4, **voice):
        pass
    import torch

    print(json.dumps({"precision": engine.precision.describe(),
                      "fused": engine.generator.talker_stack._fused is not None,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        frames = int(command["frames"])
        timers, stats = Timers(), StreamStats()
        cpu0 = time.process_time()
        with timed_engine(engine, timers):
            for _ in engine.stream(TEXT, language="english", stats=stats, max_frames=frames,
                                   **voice):
                pass
        n = stats.frames
        per_frame = {k: 1000 * v / n for k, v in timers.seconds.items()}
        print(json.dumps({
            "frames": n, "total_s": stats.total_seconds,
            "first_audio_s": stats.first_audio_seconds,
            "rtf": stats.total_seconds / stats.audio_seconds,
            "ms_per_frame": 1000 * stats.total_seconds / n,
            "talker_ms": per_frame.get("talker", 0.0),
            "code_predictor_ms": per_frame.get("code_predictor", 0.0),
            "vocoder_ms": per_frame.get("vocoder", 0.0),
            "prefill_s": timers.seconds.get("prefill", 0.0),
            "cpu_s": time.process_time() - cpu0,
            "threads_end": engine.governor.current if hasattr(engine, "governor") else threads,
        }), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wyoming_qwen3_tts.dev.peers")
    parser.add_argument("--serve-ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="0.6b")
    parser.add_argument("--type", default="custom_voice")
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.serve_ours:
        serve_ours(args.dtype, args.threads, args.size, args.type)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    workers = [ours("ours", threads=args.threads), vox("vox q8", "q8", args.threads)]
    try:
        start_all(workers)
        print(json.dumps(interleaved(workers, args.frames, args.rounds), indent=1))
    finally:
        for w in workers:
            w.stop()


if __name__ == "__main__":
    main()
