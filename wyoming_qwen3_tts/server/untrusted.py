"""Strings from outside (clients, voice files) made safe to speak, log and echo.

- `clean(text)`: what a model can be given.  Lone surrogates (valid JSON, `"\\ud800"`, but no
  character: the tokenizer raises on them) and control characters (C0/C1 except tab and line
  breaks, which become spaces; also bidi overrides and other format controls that only hide
  what a text says) are removed.  Everything else stays as it was.
- `clip(value)`: a client's string as it may appear in a log line or an error message:
  cleaned, at most `limit` characters, with a note of how much was left out.  One request
  with a 1 MB voice name must not add 1 MB to the log.
"""

from __future__ import annotations

import re
import unicodedata

CLIP_CHARS = 80

_LINE_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]")
# format characters that carry no text: bidi embeddings/overrides/isolates, invisible operators
_FORMAT = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2061\u2062\u2063\u2064")


def _keep(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category in ("Cs", "Cc"):  # a lone surrogate, a control character
        return False
    return ch not in _FORMAT


def clean(text: str) -> str:
    """`text` without code points that are not text (see the module docstring)."""
    if text.isascii() and text.isprintable():
        return text  # the usual case, fast
    text = _LINE_BREAKS.sub(" ", text)
    return "".join(ch for ch in text if _keep(ch))


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """A client's value, printable and short, for logs and error messages."""
    text = value if isinstance(value, str) else repr(value)
    shown = clean(text[: limit * 4])[:limit]
    if len(text) > limit:
        shown += f"… ({len(text)} characters)"
    return shown
