"""Wyoming protocol server for Qwen3-TTS, built to stream on CPUs."""

__version__ = "0.2.6"
