"""qwen_import: the library imports without its 25 Hz tokenizer's dependencies and without
the modules it imports at start and this project does not need then (librosa's filters with
numba and scipy.signal, scikit-learn); what it does need of them still works, unchanged."""

from __future__ import annotations

import json
import subprocess
import sys

# each check in a fresh interpreter: what an import brings in is only visible there
PROBE = r"""
import json, sys
from wyoming_qwen3_tts.engine.qwen_import import import_qwen_tts
import_qwen_tts()
from transformers.utils import is_sklearn_available
import qwen_tts.core.models.modeling_qwen3_tts as modeling
after_import = {name: name in sys.modules
                for name in ("numba", "sklearn", "scipy.signal", "librosa.filters")}
# the library's speaker-encoder mel filters, then librosa's own, through its lazy package
ours = modeling.librosa_mel_fn(sr=24000, n_fft=1024, n_mels=128, fmin=0, fmax=12000)
import librosa
real = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=128, fmin=0, fmax=12000)
print(json.dumps({"after_import": after_import, "sklearn_available": bool(is_sklearn_available()),
                  "same_mel": bool((ours == real).all()), "shape": list(ours.shape),
                  "real_module": getattr(sys.modules["librosa.filters"], "__file__", None)}))
"""


def probe() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_start_imports_are_deferred_and_what_is_deferred_still_works():
    result = probe()
    assert result["after_import"] == {"numba": False, "sklearn": False, "scipy.signal": False,
                                      "librosa.filters": False}
    assert result["sklearn_available"]  # transformers' answer is the truth again
    assert result["same_mel"] and result["shape"] == [128, 513]
    assert result["real_module"] and result["real_module"].endswith("filters.py")
