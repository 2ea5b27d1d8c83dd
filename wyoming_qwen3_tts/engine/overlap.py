"""The vocoder beside generation: frames are made on a thread of their own while the chunks
before them are decoded on the calling thread.  Opt-in: QWEN3_TTS_OVERLAP_VOCODER=1.

Sequentially, every chunk's decoding stops generation (2 threads for each in turn on a 2-core
machine).  Generation gains little from a second thread (memory-bound), the vocoder a lot, so
side by side, one core each, should finish sooner.  Measured on the 2-core EPYC of
BENCHMARKS.md (0.6B, interleaved in one process, the benchmark's "vocoder beside generation"
rows): about 1.06x faster per frame, but the first audio came 1.3x later, although the first
chunk is decoded while generation waits (every step of those first frames was slower with the
second thread alive; not understood).  A voice assistant's answers are short: first audio
counts more, so sequential stays the default.  Machines with more cores than two were not
measured (none here).

- The first chunk is decoded while generation waits, with all the threads; generation goes on
  once that chunk is handed over, with one thread fewer (that core is the vocoder's), and only
  later chunks overlap with it.  torch's thread count is per thread under OpenMP: each of the
  two threads sets its own.
- Cancelling (the caller's event) stops both within a frame, and frames made meanwhile are
  dropped; closing the stream stops the generating thread and waits for it, so the next
  utterance never shares the model with a leftover one.  An error while generating is raised
  in the calling thread.
- Off, or with fewer than two threads, everything runs in the calling thread
  (vocoder.stream_pcm).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator

import torch

from .vocoder import StreamingVocoder, stream_pcm, to_pcm16

ENV = "QWEN3_TTS_OVERLAP_VOCODER"  # 1: generation beside the vocoder (default 0: one thread)

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def enabled(environ=None) -> bool:
    value = (os.environ if environ is None else environ).get(ENV, "0").strip().lower()
    return value in ("1", "true", "yes", "on")


def overlapped_pcm(frames: Iterator[torch.Tensor], vocoder: StreamingVocoder,
                   threads: Callable[[], int],
                   cancel: threading.Event | None = None) -> Iterator[bytes]:
    """int16 PCM of `frames` decoded by `vocoder`, generation on a thread of its own.

    `threads()`: torch threads for generation now (the governor's choice); with fewer than
    two, or unless enabled, the plain sequential stream."""
    if threads() < 2 or not enabled():
        yield from stream_pcm(frames, vocoder)
        return
    made: queue.SimpleQueue = queue.SimpleQueue()
    first_decoded = threading.Event()  # generation waits for it after the first chunk
    stop = threading.Event()
    first_chunk = vocoder.schedule[0]

    def generate() -> None:
        torch.set_num_threads(threads())  # this thread's own count (a new thread's default
        try:  # is whatever was set last, anywhere)
            for count, frame in enumerate(frames, start=1):
                made.put(frame)
                if count == first_chunk:
                    first_decoded.wait()
                    torch.set_num_threads(max(1, threads() - 1))  # one core for the vocoder
                if stop.is_set():
                    break
        except BaseException as err:  # noqa: BLE001 - raised again in the calling thread
            made.put(_Failed(err))
        finally:
            frames.close()  # type: ignore[attr-defined]
            made.put(_END)

    worker = threading.Thread(target=generate, name="generation", daemon=True)
    own_threads = threads()
    torch.set_num_threads(own_threads)  # the first chunk with all of them
    worker.start()
    try:
        while True:
            item = made.get()
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            if cancel is not None and cancel.is_set():
                break  # frames made before the cancel was seen are dropped, not decoded
            wav = vocoder.push(item)
            if wav is not None:
                if len(wav):
                    yield to_pcm16(wav)
                if not first_decoded.is_set():  # handed over: from now on side by side
                    torch.set_num_threads(1)
                    first_decoded.set()
        wav = vocoder.flush()
        if wav is not None and len(wav):
            yield to_pcm16(wav)
    finally:
        stop.set()
        first_decoded.set()
        worker.join()
        torch.set_num_threads(own_threads)
