"""A speech answer over HTTP: encoded audio as it is generated, bounded by what the client
reads; requests being answered are known so the server can cancel them when it stops."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from fastapi.responses import StreamingResponse

from ..server.speech import SlowClient, Speech
from .audio import Encoder, stretch

_LOGGER = logging.getLogger(__name__)


@dataclass
class Answering:
    """Speech responses in progress (cancelled when the server stops)."""

    speeches: set[Speech] = field(default_factory=set)

    def cancel_all(self) -> None:
        for speech in list(self.speeches):
            speech.cancel()


class SpeechResponse(StreamingResponse):
    """A speech answer: encoded audio as it is generated, bounded by what the client reads."""

    def __init__(self, speech: Speech, pieces, first: bytes, first_at: float, encoder: Encoder,
                 answering: Answering, grace: float, headers: dict[str, str]) -> None:
        super().__init__(content=iter(()), media_type=encoder.format.media_type,
                         headers=headers)
        self.speech, self.pieces, self.first, self.first_at = speech, pieces, first, first_at
        self.encoder, self.answering, self.grace = encoder, answering, grace
        self.samples = 0

    async def _send_body(self, send, body: bytes, more: bool = True) -> None:
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": body,
                                         "more_body": more}), self.grace)
        except asyncio.TimeoutError:
            raise SlowClient(f"the client read nothing for {self.grace:g} s") from None

    async def _watch_disconnect(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.speech.cancel()
                return

    async def __call__(self, scope, receive, send) -> None:
        speech = self.speech
        self.answering.speeches.add(speech)
        watcher = asyncio.create_task(self._watch_disconnect(receive))
        complete = False
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            pcm: bytes | None = self.first
            while pcm is not None:
                self.samples += len(pcm) // 2
                if body := self.encoder.encode(pcm):
                    await self._send_body(send, body)
                pcm = await anext(self.pieces, None)
            if speech.failure is None:
                await self._send_body(send, self.encoder.finish(), more=False)
                complete = True
            elif speech.failure.code != "cancelled":
                _LOGGER.warning("HTTP speech ended early (%s): %s", speech.failure.code,
                                speech.failure.text)
        except SlowClient as err:
            _LOGGER.warning("Dropping an HTTP client: %s", err)
        except OSError as err:  # the client went away (uvicorn's ClientDisconnected)
            _LOGGER.debug("HTTP client gone: %s", err)
        finally:
            watcher.cancel()
            if not complete:
                speech.cancel()
            self.encoder.close()
            await self.pieces.aclose()
            speech.done()
            self.answering.speeches.discard(speech)
            if complete:
                speech.log(self.samples, self.first_at, "HTTP speech")


async def pcm_pieces(speech: Speech, speed: float):
    """The request's PCM; with a speed other than 1, each sentence stretched as a whole (a
    sentence is complete when the next one's first chunk arrives: `speech.results` grows
    before that chunk is yielded, or when the audio ends)."""
    if speed == 1.0:
        async for pcm in speech.audio():
            yield pcm
        return
    pending: list[bytes] = []
    done = 0
    async for pcm in speech.audio():
        if len(speech.results) > done:
            done = len(speech.results)
            if pending:
                yield await asyncio.to_thread(stretch, b"".join(pending), speed)
                pending = []
        pending.append(pcm)
    if pending and speech.failure is None:
        yield await asyncio.to_thread(stretch, b"".join(pending), speed)
