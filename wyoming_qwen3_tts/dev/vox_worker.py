"""The worker side of peers.py for vox-tts: run by the peer's own Python (its venv has neither
torch nor this package), so it imports nothing of ours.

    VOX_DEBUG_NO_EOS=1 python vox_worker.py MODEL.tmod THREADS

Prints one JSON line when loaded, then answers each `{"frames": N}` line on stdin with the
times of one utterance of exactly N frames (end of speech disabled by VOX_DEBUG_NO_EOS,
the count fixed by max_frames), per component from vox's own stage timers.
"""

import json
import sys
import time

import vox

TEXT = "The kitchen lights are now off, and the front door is locked."  # as bench.TEXT


def seconds(engine) -> dict:
    return dict(engine.stats()["backend"]["seconds"])


def utterance(engine, voice, frames: int) -> dict:
    before = seconds(engine)
    start = time.perf_counter()
    first, samples = None, 0
    for chunk in engine.stream(TEXT, voice, max_frames=frames, language="english", seed=1):
        if first is None:
            first = time.perf_counter() - start
        samples += len(chunk)
    total = time.perf_counter() - start
    after = seconds(engine)
    n = round(samples / 1920)
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    return {"frames": n, "total_s": total, "first_audio_s": first,
            "rtf": total / (samples / 24000), "ms_per_frame": 1000 * total / n,
            "talker_ms": 1000 * spent.get("talker", 0.0) / n,
            "code_predictor_ms": 1000 * spent.get("predictor", 0.0) / n,
            "vocoder_ms": 1000 * spent.get("codec", 0.0) / n,
            "prefill_s": spent.get("prefill", 0.0), "cpu_s": time.process_time()}


def main() -> None:
    model, threads = sys.argv[1], int(sys.argv[2])
    engine = vox.Engine(model, device="cpu", threads=threads)
    voice = engine.speaker_voice(engine.speakers[0])
    utterance(engine, voice, 4)  # warm-up
    manifest = engine.info["manifest"]
    print(json.dumps({"precision": manifest["precision"], "version": vox.__version__,
                      "threads": threads}), flush=True)
    for line in sys.stdin:
        print(json.dumps(utterance(engine, voice, int(json.loads(line)["frames"]))),
              flush=True)


if __name__ == "__main__":
    main()
