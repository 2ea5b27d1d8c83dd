"""Split text into sentences to synthesize one at a time, for whole texts and streamed deltas.

Sentence boundaries come from `sentence-stream` (the same detector wyoming-piper uses): it
buffers deltas, so a delta may end anywhere, mid-word included, and a sentence is only
released once the text after it shows it is finished (or at the end of the stream).  Each
sentence then has its whitespace collapsed, and one that is still very long (an LLM's
run-on list) is cut at a clause mark or a space, so no single prompt runs into the model's
frame cap; one that has no end yet is cut the same way once it is twice that long, so a
stream's waiting text stays bounded.  Pieces without a letter or digit ("...", "**") are
dropped: there is nothing to say.

A "sentence" that ends in a one- or two-digit number with a full stop ("Heute ist der 1.",
"Am 24.") is almost always an ordinal of a date or a list, not an end: it is kept until the
next piece and spoken with it ("Heute ist der 1. Dezember."), so normalization reads "ersten
Dezember" and no pause falls inside the date.
"""

from __future__ import annotations

import re

from sentence_stream import SentenceBoundaryDetector

MAX_SEGMENT_CHARS = 300

_WORDY = re.compile(r"\w")
_ORDINAL_END = re.compile(r"(?<![\d.,])\d{1,2}\.$")
_CLAUSE_END = re.compile(r"[,;:\u3001\uff0c\uff1b\uff1a\u2014)]\s*")


def _cut(sentence: str, limit: int) -> list[str]:
    """Cut `sentence` into pieces of at most `limit` characters at natural places."""
    pieces = []
    while len(sentence) > limit:
        window = sentence[: limit + 1]
        cut = 0
        for match in _CLAUSE_END.finditer(window):
            if match.end() > limit // 3:
                cut = match.end()
        if not cut:
            space = window.rfind(" ")
            cut = space + 1 if space > limit // 3 else limit
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    pieces.append(sentence)
    return pieces


def _clean(sentences, limit: int) -> list[str]:
    result = []
    for sentence in sentences:
        sentence = " ".join(sentence.split())
        for piece in _cut(sentence, limit):
            if _WORDY.search(piece):
                result.append(piece)
    return result


class Segmenter:
    """Turns a stream of text deltas into speakable segments, in order."""

    def __init__(self, max_chars: int = MAX_SEGMENT_CHARS) -> None:
        self._detector = SentenceBoundaryDetector()
        self._max_chars = max_chars
        self._held = ""  # a sentence ending in "1." waits for what follows it

    def _join(self, sentences) -> list[str]:
        out = []
        for sentence in sentences:
            sentence = f"{self._held} {sentence}".strip() if self._held else sentence
            self._held = ""
            if _ORDINAL_END.search(sentence.rstrip()) and len(sentence) < self._max_chars:
                self._held = sentence
            else:
                out.append(sentence)
        return out

    def add(self, delta: str) -> list[str]:
        """Feed a delta; return the segments it completed (often none)."""
        segments = _clean(self._join(self._detector.add_chunk(delta)), self._max_chars)
        return segments + self._cut_run_on()

    def _cut_run_on(self) -> list[str]:
        """A sentence that goes on and on (no end mark yet) is spoken in pieces before it
        ends: the text waiting in the detector stays below twice the segment size.  (That
        also keeps the detector's rescanning of its buffer on every delta cheap.)"""
        detector = self._detector
        waiting = f"{self._held} {detector.current_sentence}{detector.remaining_text}".strip()
        if len(waiting) <= 2 * self._max_chars:
            return []
        *ready, rest = _cut(" ".join(waiting.split()), self._max_chars)
        self._held, detector.current_sentence, detector.remaining_text = "", "", rest
        return [piece for piece in ready if _WORDY.search(piece)]

    def finish(self) -> list[str]:
        """End of text: return what is left."""
        rest = self._join([self._detector.finish()])
        if self._held:
            rest.append(self._held)
            self._held = ""
        return _clean(rest, self._max_chars)


def split_text(text: str, max_chars: int = MAX_SEGMENT_CHARS) -> list[str]:
    """All segments of a complete text."""
    segmenter = Segmenter(max_chars)
    return segmenter.add(text) + segmenter.finish()
