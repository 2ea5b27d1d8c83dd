"""The engine side: text in, PCM out, on the CPU (torch; never imports `wyoming`).

    text -> prompt.py (talker prompt) -> decoding.py (frames of 16 codes, kernels.c)
         -> vocoder.py (PCM)

loader.py finds and loads a checkpoint, quantize.py prepares its layers for the chosen
precision (precision.py), cloning.py turns a recording into a cloned voice's prompt, and
engine.py puts them together behind contract.Engine.
"""

# before any engine module imports torch: libgomp reads its waiting policy once, at load
from .threads import configure_openmp as _configure_openmp  # noqa: E402

_configure_openmp()
