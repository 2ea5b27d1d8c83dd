"""Guest instructions and weight bytes per 80 ms frame of the engine on aarch64, per precision:
generation (talker, code predictor) and vocoder apart.  Prints one JSON line per precision.

    script/aarch64 --cpu a76 --count-instructions -- \
        python3 script/aarch64.d/count_frame.py --size 0.6b --dtypes int4,int8,float32

The checkpoint is the random one of dev.checkpoints at the published geometry (built on the
host first: `python -m wyoming_qwen3_tts.dev.checkpoints`, or by dev.bench), loaded as the
engine loads it (its quantization per precision and CPU class), without the first-load
faithfulness check (minutes under emulation; its cost is paid once per checkpoint).  One torch
thread: the counts are the work, not a thread pool's spinning.  After a warm-up utterance,
the prompt is prefilled and --frames frames are generated (end of speech disabled), counted
per frame; the vocoder then decodes those frames as one chunk after a warm chunk, as the
streaming vocoder's steady state does (chunks of 16 frames).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import qcount
import torch

TEXT = "The kitchen lights are now off, and the front door is locked."


def measure(folder: Path, dtype: str, frames: int) -> dict:
    from wyoming_qwen3_tts.dev.bench import weight_bytes_per_frame
    from wyoming_qwen3_tts.engine import kernels
    from wyoming_qwen3_tts.engine.engine import Engine
    from wyoming_qwen3_tts.engine.loader import load_model
    from wyoming_qwen3_tts.engine.precision import choose_precision
    from wyoming_qwen3_tts.engine.vocoder import DecoderState

    started = time.monotonic()
    precision = choose_precision(dtype)
    tts, plan = load_model(folder, precision)
    engine = Engine(tts, plan, model_name=str(folder), precision=precision, folder=folder)
    load_s = time.monotonic() - started
    engine.sampling.do_sample = engine.sampling.subtalker_dosample = False
    speaker = engine.speakers[0] if engine.speakers else None
    for _ in engine.stream("Hello.", speaker=speaker, language="english", max_frames=2):
        pass  # warm-up: lazy set-up, the kernels' first calls
    gen = engine.generator
    gen.eos = -1  # never stop early
    counts = {"predictor": 0}
    other_codes = gen._other_codes

    def counted_other_codes(*args):
        before = qcount.instructions()
        try:
            return other_codes(*args)
        finally:
            counts["predictor"] += qcount.instructions() - before

    gen._other_codes = counted_other_codes  # type: ignore[method-assign]
    _, stream = engine.frames(TEXT, speaker=speaker, language="english",
                              max_frames=frames + 1)
    before = qcount.instructions()
    codes = [next(stream)]  # the prefill and the first frame
    first = qcount.instructions() - before
    counts["predictor"] = 0
    before = qcount.instructions()
    codes += list(stream)
    generation = qcount.instructions() - before
    predictor = counts["predictor"]
    n = len(codes) - 1
    state = DecoderState(engine.decoder)
    state.decode(torch.stack(codes[:1]))  # warm chunk
    before = qcount.instructions()
    state.decode(torch.stack(codes[1:]))
    vocoder = qcount.instructions() - before
    decoder_params = sum(p.numel() * p.element_size() for p in engine.decoder.parameters())
    return {
        "dtype": dtype, "precision": precision.describe(),
        "talker_scheme": plan.talker.scheme, "predictor_scheme": plan.predictor.scheme,
        "fused_kernels": kernels.load() is not None and gen.talker_stack._fused is not None,
        "frames": n, "load_s": round(load_s, 1),
        "instructions_per_frame": {
            "generation": round(generation / n), "talker": round((generation - predictor) / n),
            "code_predictor": round(predictor / n), "vocoder": round(vocoder / n),
            "prefill_and_first_frame": first},
        "weight_bytes_per_frame": {"generation": weight_bytes_per_frame(engine),
                                   "vocoder": decoder_params},
        "emulated_s": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="0.6b")
    parser.add_argument("--type", default="custom_voice")
    parser.add_argument("--dtypes", default="int4,int8,float32")
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from wyoming_qwen3_tts.dev.checkpoints import BUILDER_VERSION, DEVMODELS, cached_checkpoint

    folder = DEVMODELS / f"{args.size}-{args.type}-v{BUILDER_VERSION}"
    if not folder.is_dir():
        if args.size != "tiny":
            print(f"no {folder}: build it on the host first", file=sys.stderr)
            return 2
        folder = cached_checkpoint(args.type, args.size)
    for dtype in args.dtypes.split(","):
        print(json.dumps(measure(folder, dtype, args.frames)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
