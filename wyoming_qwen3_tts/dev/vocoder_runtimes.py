"""The vocoder's per-chunk step under other runtimes and torch options, interleaved in one process.

    python -m wyoming_qwen3_tts.dev.vocoder_runtimes [--threads 1] [--chunk 16] [--compile]

Variants (each timed on the same 16-frame chunks, round after round):

- ours: vocoder.DecoderState.decode, the streaming step the engine runs (torch eager);
- ours, oneDNN off: the same with `torch.backends.mkldnn` disabled (convolutions go to
  torch's own kernels);
- library, whole chunk: the library decoder's forward on one chunk with no state (the same
  convolutions, no streaming state; the form a runtime can take as a fixed graph);
- ONNX Runtime, whole chunk: that forward exported by `torch.onnx.export` and run by ONNX
  Runtime's CPU provider (its MLAS kernels);
- torch.compile, whole chunk (--compile): inductor on that forward; its compile time is
  reported.

channels-last is not a variant: torch's memory formats need 4-D (channels_last) or 5-D
tensors, and every convolution here is 1-D.  ONNX Runtime is taken from the environment or
from .cache/runtimes/ort (`pip install --target .cache/runtimes/ort onnxruntime onnx
onnxscript`); nothing of it is a dependency of the package.  With the AVX2 cap
(peers.avx2_env) torch is capped; ONNX Runtime cannot be (MLAS picks its kernels by CPUID and
has no switch), so on an AVX-512 machine its figure is an upper bound for an AVX2 CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..engine.vocoder import DecoderState

REPO = Path(__file__).resolve().parents[2]
RUNTIMES = REPO / ".cache" / "runtimes"


def load_decoder(folder: Path):
    from ..engine.qwen_import import import_qwen_tts

    import_qwen_tts()
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer

    tok = Qwen3TTSTokenizer.from_pretrained(str(folder / "speech_tokenizer"))
    return tok.model.decoder.float().eval()


def onnx_session(decoder, chunk: int, threads: int):
    """An ONNX Runtime session of the library decoder's forward on [1, 16, chunk] codes, or
    None without onnxruntime; the export is cached in .cache/runtimes."""
    sys.path.append(str(RUNTIMES / "ort"))
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None
    path = RUNTIMES / f"decoder-{chunk}-{sum(p.numel() for p in decoder.parameters())}.onnx"
    if not path.is_file():
        RUNTIMES.mkdir(parents=True, exist_ok=True)
        codes = torch.zeros(1, 16, chunk, dtype=torch.long)
        torch.onnx.export(decoder, (codes,), str(path), dynamo=True, input_names=["codes"],
                          output_names=["wav"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, ort.__version__


def measure(folder: Path, threads: int, chunk: int, rounds: int, compile_: bool) -> dict:
    torch.set_num_threads(threads)
    decoder = load_decoder(folder)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2048, (chunk * (rounds + 2), 16), generator=g)
    one = codes[:chunk].T.unsqueeze(0).contiguous()
    report: dict = {"threads": threads, "chunk": chunk, "rounds": rounds, "rows": {}}
    with torch.inference_mode():
        whole = decoder(codes.T.unsqueeze(0))[0, 0].numpy()
        # streaming equality of each streaming variant against whole decoding
        for name, mkldnn in (("ours", True), ("ours, oneDNN off", False)):
            with torch.backends.mkldnn.flags(enabled=mkldnn):
                state = DecoderState(decoder)
                parts = [state.decode(codes[i:i + chunk]).numpy()
                         for i in range(0, len(codes), chunk)]
            report["rows"][name] = {"max_abs_diff_vs_whole": float(
                np.abs(np.concatenate(parts) - whole).max())}
        states = {name: DecoderState(decoder) for name in ("ours", "ours, oneDNN off")}
        for st in states.values():
            st.decode(codes[:chunk])
        session, ort_version = onnx_session(decoder, chunk, threads)
        fns: dict[str, Callable[[], object]] = {
            "ours": lambda: None, "ours, oneDNN off": lambda: None,  # streamed below
            "library, whole chunk": lambda: decoder(one),
        }
        if session is not None:
            ref = decoder(one)[0, 0].numpy()
            got = session.run(None, {"codes": one.numpy()})[0][0, 0]
            report["rows"][f"ONNX Runtime {ort_version}, whole chunk"] = {
                "max_abs_diff_vs_torch": float(np.abs(got - ref).max())}
            fns[f"ONNX Runtime {ort_version}, whole chunk"] = \
                lambda: session.run(None, {"codes": one.numpy()})
        if compile_:
            started = time.perf_counter()
            compiled = torch.compile(decoder, dynamic=False)
            compiled(one)
            report["rows"]["torch.compile, whole chunk"] = {
                "compile_s": round(time.perf_counter() - started, 1)}
            fns["torch.compile, whole chunk"] = lambda: compiled(one)
        times: dict[str, list[float]] = {name: [] for name in fns}
        for r in range(rounds):
            frames = codes[chunk * (r + 1): chunk * (r + 2)]
            for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                start = time.perf_counter()
                if name == "ours":
                    states[name].decode(frames)
                elif name == "ours, oneDNN off":
                    with torch.backends.mkldnn.flags(enabled=False):
                        states[name].decode(frames)
                else:
                    fns[name]()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        row = report["rows"].setdefault(name, {})
        row["ms_per_frame"] = round(1000 * statistics.median(values) / chunk, 1)
    return report


def markdown(reports: list[dict]) -> list[str]:
    lines = ["", "### The vocoder's step: runtimes and torch options", "",
             "Milliseconds per frame of audio for chunks of 16 frames (the engine's steady "
             "chunk), medians of interleaved rounds in one process "
             "(`python -m wyoming_qwen3_tts.dev.vocoder_runtimes`). 'ours' is the streaming "
             "step the engine runs; 'whole chunk' rows run the library's stateless forward "
             "on one chunk (the same convolutions). Equality: the largest difference of the "
             "streamed samples from whole decoding (the tests' tolerance is 1e-4).", "",
             "| row | threads | variant | ms/frame | equality / note |", "|---|---|---|---|---|"]
    for rep in reports:
        for name, row in rep["rows"].items():
            note = ", ".join(f"{k.replace('_', ' ')} {v:.2g}" if isinstance(v, float)
                             else f"{k.replace('_', ' ')} {v}"
                             for k, v in row.items() if k != "ms_per_frame")
            lines.append(f"| {rep.get('label', '')} | {rep['threads']} | {name} "
                         f"| {row.get('ms_per_frame', '')} | {note} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wyoming_qwen3_tts.dev.vocoder_runtimes")
    parser.add_argument("--size", default="0.6b")
    parser.add_argument("--type", default="custom_voice")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    from .peers import checkpoint

    report = measure(checkpoint(args.size, args.type), args.threads, args.chunk, args.rounds,
                     args.compile)
    report["label"] = args.label
    print(json.dumps(report))


if __name__ == "__main__":
    main()
