"""POST /v1/orchestrate: a WAV in, the spoken reply out (one turn, over HTTP).

handlers.api_gate runs first (key, concurrency). The upload is read here with its
own accounting: every body byte against MAX_UPLOAD_BYTES, at most MAX_PARTS parts,
the whole read within BODY_TIMEOUT_S; the WAV is parsed on a thread and its length
checked from the header before anything is decoded."""

from __future__ import annotations

import asyncio
import base64
import logging
import time

from aiohttp import BodyPartReader, web

from bot import redact
from bot.conversation import Conversation
from bot.errors import StageError
from bot.lanes import api_lane
from bot.logs import kv
from bot.orchestrator import ActionRequested, AudioChunk, Orchestrator, SentenceEnd, Timings
from handlers.errors import json_error
from handlers.startup import STARTUP
from handlers.state import EDGE, METRICS, ORCHESTRATOR, PROVIDERS, REQUEST_ID, SETTINGS
from media import wav

log = logging.getLogger("handlers.orchestrate")

WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}
MAX_SECONDS = 30.0  # the longest audio accepted, checked from the WAV header before decoding
MIN_SECONDS = 0.1
MAX_PARTS = 8  # multipart parts walked before the body is refused


class BadInput(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _read_upload(request: web.Request, limit: int, timeout: float) -> bytes:
    """The WAV bytes of the upload. Every body byte (part headers, skipped parts,
    chunked framing removed) counts against ``limit``, and the whole read has
    ``timeout`` seconds."""
    if request.content_length is not None and request.content_length > limit:
        raise BadInput(413, "too_large", f"the upload is {request.content_length} bytes; the limit is {limit}")
    ctype = request.content_type
    if ctype not in WAV_TYPES and ctype != "multipart/form-data":
        raise BadInput(
            415, "unsupported_media_type",
            f"content type {ctype or 'none'!r} is not accepted; send audio/wav or multipart/form-data with a field 'audio'",
        )
    edge = request.app.get(EDGE)
    if edge is not None:
        edge.reading_body(request.transport)
    try:
        async with asyncio.timeout(timeout):
            data = await (_read_wav_body(request, limit) if ctype in WAV_TYPES else _read_multipart(request, limit))
    except TimeoutError:
        raise BadInput(408, "body_timeout", f"the upload did not arrive within {timeout:g} s") from None
    finally:
        if edge is not None:
            edge.busy(request.transport)
    if not data:
        raise BadInput(400, "empty_body", "the request has no audio")
    return data


async def _read_wav_body(request: web.Request, limit: int) -> bytes:
    buf = bytearray()
    while chunk := await request.content.readany():
        buf += chunk
        _check_total(request, limit)
    return bytes(buf)


async def _read_multipart(request: web.Request, limit: int) -> bytes:
    try:
        reader = await request.multipart()
        parts = 0
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > MAX_PARTS:
                raise BadInput(400, "too_many_parts", f"the multipart body has more than {MAX_PARTS} parts")
            if not isinstance(part, BodyPartReader):
                raise BadInput(400, "bad_multipart", "nested multipart bodies are not accepted")
            data = bytearray()
            while chunk := await part.read_chunk():
                _check_total(request, limit)
                if part.name == "audio":
                    data += chunk
            _check_total(request, limit)
            if part.name == "audio":
                return bytes(data)
    except (BadInput, ConnectionError):
        raise
    except Exception:  # noqa: BLE001 - client input never makes a traceback: ValueError, aiohttp's InvalidHeader / BadHttpMessage, ...: a malformed body
        raise BadInput(400, "bad_multipart", "the multipart body could not be parsed") from None
    raise BadInput(400, "missing_audio", "the multipart body has no field named 'audio'")


def _check_total(request: web.Request, limit: int) -> None:
    """Every byte received for this body so far (the stream's own count)."""
    if request.content.total_bytes > limit:
        raise BadInput(413, "too_large", f"the upload is larger than the limit of {limit} bytes")


async def _audio(request: web.Request, max_bytes: int, body_timeout_s: float) -> wav.Audio:
    data = await _read_upload(request, max_bytes, body_timeout_s)
    try:  # off the loop: a hostile file is bounded (MAX_CHUNKS), but still not the loop's work
        audio = await asyncio.to_thread(wav.read, data, MAX_SECONDS)
    except wav.WavTooLong as exc:
        raise BadInput(413, "too_long", str(exc)) from None
    except wav.WavError as exc:
        raise BadInput(400, "bad_wav", str(exc)) from None
    if audio.seconds < MIN_SECONDS:
        raise BadInput(400, "too_short", f"the audio is {audio.seconds:.2f} s; at least {MIN_SECONDS} s is needed")
    return audio


async def _reply(orch: Orchestrator, rid: str, transcript: str, mulaw: bool, timings: Timings) -> tuple[list[bytes], list[str], list[str]]:
    """One turn's answer to ``transcript``: its audio chunks, the sentences said, the actions asked for."""
    conv = Conversation(call_id=rid)
    conv.add_user(transcript)
    chunks: list[bytes] = []
    said: list[str] = []
    actions: list[str] = []
    async for ev in orch.respond(conv, mulaw=mulaw, timings=timings):
        if isinstance(ev, AudioChunk):
            chunks.append(ev.data)
        elif isinstance(ev, SentenceEnd):
            said.append(ev.text)
        elif isinstance(ev, ActionRequested):
            actions.append(ev.action.kind)
    return chunks, said, actions


async def orchestrate(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    orch = request.app[ORCHESTRATOR]
    rid = request[REQUEST_ID]
    fmt = request.query.get("format", "wav")
    want_json = "application/json" in request.headers.get("Accept", "")
    timings = Timings()
    outcome, stage_err = "unfinished", None  # what the request line says if the handler is cancelled
    if not request.app[STARTUP].ready:
        return json_error(503, "starting", "the models are still loading; try again in a few seconds")
    try:
        if fmt not in ("wav", "mulaw"):
            raise BadInput(400, "bad_format", f"format={fmt!r} is not supported; use wav or mulaw")
        audio = await _audio(request, settings.max_upload_bytes, settings.body_timeout_s)
        timings.t0 = time.perf_counter()  # stage timings count from the audio in hand
        with api_lane():  # the embedded STT serves phone turns first
            transcript = await orch.transcribe(audio.pcm16, audio.rate, timings)
        mulaw = fmt == "mulaw"
        chunks, said, actions = await _reply(orch, rid, transcript, mulaw, timings)
        timings.mark("total")
        outcome = "ok"
    except BadInput as exc:
        outcome = f"bad_input:{exc.code}"
        resp = json_error(exc.status, exc.code, exc.message)
        if exc.status in (408, 413) or exc.code in ("too_many_parts", "bad_multipart"):
            resp.force_close()  # the rest of the body is not read
        return resp
    except ConnectionError:  # the client hung up mid-upload: one line, no traceback
        outcome = "client_gone"
        return json_error(499, "client_gone", "the client closed the connection")
    except StageError as err:
        outcome, stage_err = f"{err.stage}:{err.code}", err
        timings.mark("total")
        resp = web.json_response({"error": err.to_dict()}, status=err.http_status)
        resp.headers["Server-Timing"] = timings.server_timing()
        return resp
    finally:
        fields = dict(request_id=rid, route="orchestrate", outcome=outcome, **{f"{k}_ms": v for k, v in timings.stages.items()})
        if stage_err is not None:
            fields.update(stage=stage_err.stage, provider=stage_err.provider, retryable=stage_err.retryable)
        else:
            request.app[METRICS].observe_stages(timings.stages, {"stt": orch.stt, "llm": orch.llm, "tts": orch.tts})
        log.log(logging.WARNING if stage_err is not None else logging.INFO, "request", extra=kv(**fields))

    pcm_or_ulaw = b"".join(chunks)
    reply_text = " ".join(said)
    if settings.log_transcripts:
        log.info("transcript", extra=kv(request_id=rid, caller=redact.transcript(transcript), bot=redact.transcript(reply_text)))
    if mulaw:
        body = wav.write_mulaw(pcm_or_ulaw, 8000)
    else:
        body = wav.write_pcm16(pcm_or_ulaw, request.app[PROVIDERS].tts.pcm_rate)
    headers = {"Server-Timing": timings.server_timing(), "X-Request-Id": rid}
    if want_json:
        return web.json_response(
            {
                "request_id": rid,
                "transcript": transcript,
                "reply": reply_text,
                "actions": actions,
                "timings_ms": timings.stages,
                "audio": {"content_type": "audio/wav", "encoding": "mulaw" if mulaw else "pcm16", "base64": base64.b64encode(body).decode()},
            },
            headers=headers,
        )
    return web.Response(body=body, content_type="audio/wav", headers=headers)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/orchestrate", orchestrate)

