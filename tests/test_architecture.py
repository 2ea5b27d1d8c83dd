"""The seam between the two sides, checked by importing each without the other's library."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import wyoming_qwen3_tts

PACKAGE = Path(wyoming_qwen3_tts.__file__).parent


def modules(subpackage: str) -> list[str]:
    return [f"wyoming_qwen3_tts.{subpackage}.{m.name}"
            for m in pkgutil.iter_modules([str(PACKAGE / subpackage)])]


def import_without(blocked: list[str], names: list[str]) -> subprocess.CompletedProcess:
    """Import `names` in a fresh interpreter in which `blocked` cannot be imported."""
    code = "\n".join([
        "import sys",
        f"for name in {blocked!r}:",
        "    sys.modules[name] = None  # import raises ImportError",
        f"for name in {names!r}:",
        "    __import__(name)",
        f"assert not any(b in sys.modules and sys.modules[b] for b in {blocked!r})",
    ])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_the_server_side_imports_without_torch():
    names = ["wyoming_qwen3_tts.contract", "wyoming_qwen3_tts.cli", "wyoming_qwen3_tts.app",
             *modules("server"), *modules("http")]
    result = import_without(["torch", "torchaudio", "transformers"], names)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_engine_side_imports_without_wyoming():
    result = import_without(["wyoming"], ["wyoming_qwen3_tts.contract", *modules("engine")])
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_runtime_does_not_need_the_dev_tools():
    names = ["wyoming_qwen3_tts.app", *modules("server"), *modules("engine"), *modules("http")]
    code = "\n".join([
        "import sys",
        f"for name in {names!r}:",
        "    __import__(name)",
        "assert not [m for m in sys.modules if m.startswith('wyoming_qwen3_tts.dev')]",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
