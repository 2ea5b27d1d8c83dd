"""The HTTP front door's options (no model needed) and its row in the server benchmark."""

from __future__ import annotations

import pytest

from wyoming_qwen3_tts.cli import build_parser, parse_args
from wyoming_qwen3_tts.http import parse_http_uri

HTTP_OPTIONS = {"--http": "QWEN3_TTS_HTTP", "--http-api-key": "QWEN3_TTS_HTTP_API_KEY",
                "--http-trusted-proxy": "QWEN3_TTS_HTTP_TRUSTED_PROXY"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in HTTP_OPTIONS.values():
        monkeypatch.delenv(variable, raising=False)


def test_http_is_off_by_default():
    args = parse_args([])
    assert args.http is None and args.http_api_key is None
    assert args.http_trusted_proxy == frozenset()


def test_http_options_and_their_environment_variables(monkeypatch):
    args = parse_args(["--http", "http://0.0.0.0:10201", "--http-api-key", "k",
                       "--http-trusted-proxy", "172.30.32.2, 10.0.0.1"])
    assert args.http == "http://0.0.0.0:10201" and args.http_api_key == "k"
    assert args.http_trusted_proxy == {"172.30.32.2", "10.0.0.1"}
    monkeypatch.setenv("QWEN3_TTS_HTTP", "tcp://127.0.0.1:8000")
    monkeypatch.setenv("QWEN3_TTS_HTTP_API_KEY", "from-env")
    monkeypatch.setenv("QWEN3_TTS_HTTP_TRUSTED_PROXY", "172.30.32.2")
    args = parse_args([])
    assert (args.http, args.http_api_key, args.http_trusted_proxy) == (
        "tcp://127.0.0.1:8000", "from-env", {"172.30.32.2"})
    text = build_parser().format_help()
    for option, variable in HTTP_OPTIONS.items():
        assert option in text and variable in text


@pytest.mark.parametrize("uri", ["8000", "http://host", "ftp://x:1", "http://:80",
                                 "http://h:99999", "unix://", "http://h:80/path"])
def test_bad_http_uris_are_refused(uri):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--http", uri])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("uri", "parsed"), [
    ("http://0.0.0.0:10201", ("tcp", "0.0.0.0", 10201)),
    ("tcp://127.0.0.1:80", ("tcp", "127.0.0.1", 80)),
    ("http://[::1]:8000/", ("tcp", "::1", 8000)),
    ("unix:///run/tts.sock", ("unix", "/run/tts.sock", None)),
])
def test_http_uri_grammar(uri, parsed):
    assert parse_http_uri(uri) == parsed


def test_benchmark_compares_http_first_bytes_with_wyoming(tiny_custom_voice):
    """bench --server measures both front doors for the same text (figures not asserted)."""
    from wyoming_qwen3_tts.dev.bench_server import measure_server

    rows = measure_server(tiny_custom_voice, threads=1, quick=True, repeats=1)
    modes = [row["mode"] for row in rows]
    assert modes[0].startswith("synthesize (one shot)")
    assert modes[1].startswith("HTTP /v1/audio/speech pcm") and "x Wyoming's" in modes[1]
    assert any(mode.startswith("HTTP /v1/audio/speech mp3") for mode in modes)
    for row in rows:
        assert row["first_audio_s"] >= 0 and row["audio_s"] > 0
    assert rows[0]["audio_s"] > 0 and rows[1]["audio_s"] > 0
