"""`python -m wyoming_qwen3_tts`: the server (see app.py)."""

from .app import run

if __name__ == "__main__":
    run()
