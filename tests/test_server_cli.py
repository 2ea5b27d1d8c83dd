"""Command line and environment variables (no model needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wyoming_qwen3_tts import __version__
from wyoming_qwen3_tts.cli import DEFAULT_MODEL, build_parser, parse_args

OPTIONS = ["--uri", "--model", "--data-dir", "--local-files-only", "--voices-dir", "--voice",
           "--language", "--dtype", "--threads", "--interop-threads", "--samples-per-chunk",
           "--no-streaming", "--zeroconf", "--max-text-chars", "--no-warmup", "--debug",
           "--log-format", "--max-reference-seconds", "--max-loaded-models",
           "--max-connections", "--idle-timeout", "--max-queue", "--max-unread-audio",
           "--no-normalize", "--sentence-silence", "--volume", "--max-stream-chars",
           "--max-connections-per-peer", "--max-queue-per-peer"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for option in OPTIONS:
        monkeypatch.delenv("QWEN3_TTS_" + option[2:].replace("-", "_").upper(), raising=False)


def test_defaults():
    args = parse_args([])
    assert args.uri == "tcp://0.0.0.0:10200"
    assert args.model == [DEFAULT_MODEL]
    assert args.language == "auto" and args.dtype == "auto"
    assert (args.threads, args.interop_threads, args.samples_per_chunk) == (0, 0, 1024)
    assert args.max_text_chars == 2000
    assert args.max_reference_seconds == 10 and args.max_loaded_models == 0
    assert (args.max_connections, args.idle_timeout, args.max_queue,
            args.max_unread_audio) == (16, 300, 8, 30)
    assert args.voices_dir == args.data_dir / "voices"
    assert args.zeroconf is None
    assert not (args.no_streaming or args.no_warmup or args.debug or args.local_files_only)


def test_every_option_has_an_environment_variable(monkeypatch):
    env = {
        "QWEN3_TTS_URI": "tcp://127.0.0.1:1234", "QWEN3_TTS_MODEL": "a/b, /models/c",
        "QWEN3_TTS_DATA_DIR": "/tmp/x", "QWEN3_TTS_LOCAL_FILES_ONLY": "true",
        "QWEN3_TTS_VOICES_DIR": "/voices", "QWEN3_TTS_VOICE": "Vivian",
        "QWEN3_TTS_LANGUAGE": "de", "QWEN3_TTS_DTYPE": "int8", "QWEN3_TTS_THREADS": "3",
        "QWEN3_TTS_INTEROP_THREADS": "1", "QWEN3_TTS_SAMPLES_PER_CHUNK": "2048",
        "QWEN3_TTS_NO_STREAMING": "1", "QWEN3_TTS_ZEROCONF": "kitchen",
        "QWEN3_TTS_MAX_TEXT_CHARS": "99", "QWEN3_TTS_NO_WARMUP": "yes",
        "QWEN3_TTS_DEBUG": "on", "QWEN3_TTS_LOG_FORMAT": "%(message)s",
        "QWEN3_TTS_MAX_REFERENCE_SECONDS": "7.5", "QWEN3_TTS_MAX_LOADED_MODELS": "2",
        "QWEN3_TTS_MAX_CONNECTIONS": "4", "QWEN3_TTS_IDLE_TIMEOUT": "0",
        "QWEN3_TTS_MAX_QUEUE": "3", "QWEN3_TTS_MAX_UNREAD_AUDIO": "2.5",
        "QWEN3_TTS_NO_NORMALIZE": "1", "QWEN3_TTS_SENTENCE_SILENCE": "0.3",
        "QWEN3_TTS_VOLUME": "1.5", "QWEN3_TTS_MAX_STREAM_CHARS": "5000",
        "QWEN3_TTS_MAX_CONNECTIONS_PER_PEER": "2", "QWEN3_TTS_MAX_QUEUE_PER_PEER": "1",
    }
    assert sorted(env) == sorted("QWEN3_TTS_" + o[2:].replace("-", "_").upper() for o in OPTIONS)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = parse_args([])
    assert args.uri == "tcp://127.0.0.1:1234" and args.model == ["a/b", "/models/c"]
    assert str(args.data_dir) == "/tmp/x" and args.local_files_only
    assert str(args.voices_dir) == "/voices" and args.voice == "Vivian"
    assert args.language == "german" and args.dtype == "int8"
    assert (args.threads, args.interop_threads, args.samples_per_chunk) == (3, 1, 2048)
    assert args.no_streaming and args.zeroconf == "kitchen" and args.max_text_chars == 99
    assert args.no_warmup and args.debug and args.log_format == "%(message)s"
    assert args.max_reference_seconds == 7.5 and args.max_loaded_models == 2
    assert (args.max_connections, args.idle_timeout, args.max_queue,
            args.max_unread_audio) == (4, 0, 3, 2.5)
    assert args.no_normalize and args.sentence_silence == 0.3 and args.volume == 1.5
    assert (args.max_stream_chars, args.max_connections_per_peer,
            args.max_queue_per_peer) == (5000, 2, 1)
    # the command line wins over the environment
    args = parse_args(["--model", "x/y", "--threads", "2", "--zeroconf"])
    assert args.model == ["x/y"] and args.threads == 2 and args.zeroconf == "qwen3-tts"


@pytest.mark.parametrize("value, expected", [("1", "qwen3-tts"), ("true", "qwen3-tts"),
                                             ("0", None), ("off", None), ("", None),
                                             ("study", "study")])
def test_zeroconf_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv("QWEN3_TTS_ZEROCONF", value)
    assert parse_args([]).zeroconf == expected


@pytest.mark.parametrize("argv, env", [
    (["--language", "klingon"], {}),
    (["--dtype", "float16"], {}),
    ([], {"QWEN3_TTS_DTYPE": "float16"}),
    ([], {"QWEN3_TTS_NO_STREAMING": "maybe"}),
    (["--samples-per-chunk", "0"], {}),
    (["--max-text-chars", "0"], {}),
    (["--threads", "-1"], {}),
    (["--max-reference-seconds", "0.5"], {}),
    (["--max-reference-seconds", "120"], {}),
    (["--max-loaded-models", "-1"], {}),
    (["--max-connections", "0"], {}),
    (["--max-queue", "0"], {}),
    (["--idle-timeout", "-1"], {}),
    ([], {"QWEN3_TTS_IDLE_TIMEOUT": "nan"}),
    (["--max-unread-audio", "0"], {}),
    (["--max-unread-audio", "inf"], {}),
    (["--uri", "unix:///tmp/s", "--zeroconf"], {}),
    (["--sentence-silence", "-1"], {}),
    (["--volume", "0"], {}),
    (["--max-stream-chars", "10"], {}),
    (["--max-queue-per-peer", "-1"], {}),
    ([], {"QWEN3_TTS_VOLUME": "nan"}),
])
def test_bad_options_are_refused(monkeypatch, argv, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2


def test_help_documents_every_environment_variable():
    text = build_parser().format_help()
    for option in OPTIONS:
        assert option in text
        assert "QWEN3_TTS_" + option[2:].replace("-", "_").upper() in text


def test_version_from_the_console():
    result = subprocess.run([sys.executable, "-m", "wyoming_qwen3_tts", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == __version__


def test_readme_options_table_shows_the_parsers_defaults():
    """The README's table of options is written by hand: its defaults must be the parser's
    (cli.py is the one source)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    parser = build_parser()
    defaults = {action.option_strings[0]: action.default for action in parser._actions
                if action.option_strings}
    defaults["--model"] = DEFAULT_MODEL  # appended to: filled in after parsing
    checked = 0
    for option, default in re.findall(r"^\| `(--[a-z-]+)[^`]*` \| `QWEN3_TTS_\w+` \| `([^`]*)` \|",
                                      readme, re.M):
        assert option in defaults, f"README names {option}, which the server does not have"
        default = str(Path(default).expanduser()) if default.startswith("~/") else default
        if default == "DATA_DIR/voices":  # filled in after parsing
            args = parse_args([])
            assert args.voices_dir == args.data_dir / "voices"
            continue
        assert str(defaults[option]) == default or (
            isinstance(defaults[option], float) and float(default) == defaults[option]), \
            f"{option}: README says {default!r}, the parser {defaults[option]!r}"
        checked += 1
    assert checked >= 12  # the table is still there and parsed
    listed = set(re.findall(r"^\| `(--[a-z-]+)", readme, re.M))
    missing = [o for o in defaults if o not in listed and o != "-h"]
    assert not missing, f"options missing from the README's table: {missing}"
