"""POST /v1/orchestrate: a WAV in, the spoken reply out (one turn, over HTTP)."""

from __future__ import annotations

import base64
import logging
import time

from aiohttp import web

from bot.errors import StageError
from bot.logs import kv
from bot.orchestrator import ActionRequested, AudioChunk, SentenceEnd, Timings
from bot.providers.base import Conversation
from handlers.errors import json_error
from handlers.startup import STARTUP
from handlers.state import METRICS, ORCHESTRATOR, PROVIDERS, REQUEST_ID, SETTINGS
from media import wav

log = logging.getLogger("handlers.orchestrate")

WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}
MAX_SECONDS = 60.0
MIN_SECONDS = 0.1


class BadInput(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _read_upload(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BadInput(413, "too_large", f"the upload is {request.content_length} bytes; the limit is {limit}")
    ctype = request.content_type
    if ctype in WAV_TYPES:
        data = await _read_limited(request.content, limit)
    elif ctype == "multipart/form-data":
        try:
            reader = await request.multipart()
            data = None
            while (part := await reader.next()) is not None:
                if getattr(part, "name", None) == "audio":
                    data = await _read_limited(part, limit)
                    break
        except BadInput:
            raise
        except Exception:  # ValueError, aiohttp's InvalidHeader / BadHttpMessage, ...: a malformed body
            raise BadInput(400, "bad_multipart", "the multipart body could not be parsed") from None
        if data is None:
            raise BadInput(400, "missing_audio", "the multipart body has no field named 'audio'")
    else:
        raise BadInput(
            415, "unsupported_media_type",
            f"content type {ctype or 'none'!r} is not accepted; send audio/wav or multipart/form-data with a field 'audio'",
        )
    if not data:
        raise BadInput(400, "empty_body", "the request has no audio")
    return data


async def _read_limited(source, limit: int) -> bytes:
    """Read a request body (StreamReader) or a multipart part (BodyPartReader),
    refusing as soon as it passes ``limit``: memory stays bounded."""
    read = source.read_chunk if hasattr(source, "read_chunk") else source.readany
    buf = bytearray()
    while chunk := await read():
        buf += chunk
        if len(buf) > limit:
            raise BadInput(413, "too_large", f"the upload is larger than the limit of {limit} bytes")
    return bytes(buf)


async def orchestrate(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    orch = request.app[ORCHESTRATOR]
    rid = request[REQUEST_ID]
    fmt = request.query.get("format", "wav")
    want_json = "application/json" in request.headers.get("Accept", "")
    timings = Timings()
    outcome, stage_err = "ok", None
    if not request.app[STARTUP].ready:
        return json_error(503, "starting", "the models are still loading; try again in a few seconds")
    try:
        if fmt not in ("wav", "mulaw"):
            raise BadInput(400, "bad_format", f"format={fmt!r} is not supported; use wav or mulaw")
        data = await _read_upload(request, settings.max_upload_bytes)
        try:
            audio = wav.read(data)
        except wav.WavError as exc:
            raise BadInput(400, "bad_wav", str(exc)) from None
        if audio.seconds < MIN_SECONDS:
            raise BadInput(400, "too_short", f"the audio is {audio.seconds:.2f} s; at least {MIN_SECONDS} s is needed")
        if audio.seconds > MAX_SECONDS:
            raise BadInput(413, "too_long", f"the audio is {audio.seconds:.1f} s; at most {MAX_SECONDS:.0f} s is accepted")

        timings.t0 = time.perf_counter()  # stage timings count from the audio in hand
        transcript = await orch.transcribe(audio.pcm16, audio.rate, timings)
        conv = Conversation(call_id=rid)
        conv.add_user(transcript)
        mulaw = fmt == "mulaw"
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
        timings.mark("total")
    except BadInput as exc:
        outcome = f"bad_input:{exc.code}"
        return json_error(exc.status, exc.code, exc.message)
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
        log.info("transcript", extra=kv(request_id=rid, caller=transcript, bot=reply_text))
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

