"""The HTTP front door (torch-free): an OpenAI-compatible speech API, live voice management
and a web page, served in the same process and event loop as the Wyoming server.

    server.py  uvicorn inside the running event loop (`--http URI`), started/stopped by app.py
    api.py     the FastAPI application: its routes and the OpenAPI document
    schemas.py request and response bodies (pydantic)
    responses.py  a speech answer streamed as it is generated, bounded by what the client reads
    access.py  the API key (`--http-api-key`), trusted proxies, body-size limits
    errors.py  errors in OpenAI's shape;  settings.py  the HTTP options
    audio.py   response formats encoded as the audio is generated (soundfile/libsndfile),
               `speed` (librosa's time stretch, per sentence), uploaded recordings checked
    voices.py  voice folders created, renamed and deleted atomically in --voices-dir, and the
               catalog kept in step with the folder (also with changes made by hand)
    page.html  the web page at `/` (plain HTML and JavaScript, relative URLs for HA ingress)

Every speech request is a `server.speech.Speech` with a `Lane` of its own, so HTTP and
Wyoming requests share one worker, one queue (`--max-queue`) and take turns sentence by
sentence.  Importing this package imports neither FastAPI nor torch; api.py and server.py
import FastAPI and uvicorn only when `--http` is given.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def parse_http_uri(uri: str) -> tuple[str, str, int | None]:
    """`http://HOST:PORT`, `tcp://HOST:PORT` or `unix://PATH` -> (kind, host or path, port)."""
    parts = urlsplit(uri)
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) or ""
        if not path:
            raise ValueError(f"{uri!r}: unix:// needs a path")
        return "unix", path, None
    if parts.scheme not in ("http", "tcp"):
        raise ValueError(f"{uri!r}: expected http://HOST:PORT, tcp://HOST:PORT or unix://PATH")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"{uri!r}: {err}") from None
    if port is None or parts.hostname is None or parts.path not in ("", "/"):
        raise ValueError(f"{uri!r}: expected http://HOST:PORT (e.g. http://0.0.0.0:10201)")
    return "tcp", parts.hostname, port
