"""Wire-level fakes of Deepgram, OpenAI and ElevenLabs, as aiohttp applications.

They speak the real formats (see /work/shared/docs/wire-facts.md), so the real SDK
clients can be pointed at them by base URL. Serve them with pytest-aiohttp::

    state = FakeBehaviour(reply="We open at nine.")
    server = await aiohttp_server(openai_app(state))
    settings = Settings(openai_base_url=str(server.make_url("/v1")), ...)

API:

- ``FakeBehaviour``: what the fake does (``mode``, delays, canned content) and what it
  saw (``requests``: a list of ``Seen``). Mutable: change ``mode`` between requests to
  script failover.
- ``deepgram_app(state)``: ``POST /v1/listen`` (prerecorded). Base URL = server root.
- ``openai_app(state)``: ``POST /v1/chat/completions`` (streamed or not). Base URL = ``/v1``.
- ``elevenlabs_app(state)``: ``POST /v1/text-to-speech/{voice_id}[/stream]``. Base URL = root.
- ``cloud_app(stt=, llm=, tts=)``: all three on one app (their paths do not collide).
- ``tone_ulaw(ms)``, ``tone_pcm16(ms, rate)``: the default audio, a 220 Hz tone.

Modes (``FakeBehaviour.mode``):

- ``"ok"``: the canned content (``transcript``, ``reply`` [+ ``tool_call``], ``audio``).
- a status such as ``"500"``, ``"429"``, ``"401"``, ``"422"``: that status, vendor-style JSON body.
- ``"hang"``: no response for ``hang_s`` (or until the client disconnects).
- ``"reset"``: the connection is aborted before any response.
- ``"garbage"``: 200 with a body of the wrong kind: Deepgram non-JSON text; OpenAI
  ``data: not-json`` events; ElevenLabs a JSON body (``application/json``).
- ``"shape"``: 200, parseable but wrong shape: Deepgram JSON without ``results``; OpenAI
  chunks without ``choices``; ElevenLabs an HTML page served as audio.
- ``"empty"``: Deepgram transcript ``""``; OpenAI a stream with no content deltas;
  ElevenLabs 200 with zero bytes.
- streaming only (OpenAI, ElevenLabs): ``"stall"`` sends the first token/chunk then
  hangs; ``"cut"`` sends the first token/chunk then aborts the connection;
  OpenAI ``"error_event"`` sends a token then a ``{"error": ...}`` event.

OpenAI-compatible servers that are not OpenAI (what llama.cpp's Python server does, for the
adapter to learn from; bot/providers/openai_wire.py):

- ``tools_need_choice``: ``tools`` without ``tool_choice`` are ignored (no tool calls, and
  ``usage.prompt_tokens`` counts no tools);
- ``stream_tools``: a streamed request with tools and ``tool_choice: "auto"`` fails:
  ``"error_event"`` = 200, then an error event "Automatic streaming tool choice is not
  supported"; ``"close"`` = 200, then the body ends with no event; ``"500"`` = that message
  as an HTTP 500. Non-streamed requests with tools work (tool calls in ``message``);
- ``ramble``: the reply never ends (sentences until ``max_tokens``, or forever when
  ``honour_max_tokens`` is False), paced by ``tokens_per_s``;
- ``token_chars``: text streamed in pieces of this many characters (0: word by word), so
  template tokens and entities arrive split;
- ``context_tokens``: a request whose messages (+ tools) estimated at ``chars_per_token``,
  plus its ``max_tokens``, exceed this gets llama-cpp-python's 400 ``context_length_exceeded``;
- ``refuse_params``: a request with one of these parameters gets OpenAI's 400
  "Unsupported parameter" (newer models refuse ``max_tokens`` and ``stop``);
- ``GET /v1/models`` answers the model list (health probes).

Latency: ``first_delay_s`` before the Deepgram reply / the first OpenAI token / the first
ElevenLabs chunk; ``tokens_per_s`` paces OpenAI tokens (0 = no pause);
``chunk_delay_s`` paces ElevenLabs chunks of ``chunk_size`` bytes.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from media import mulaw

__all__ = [
    "FakeBehaviour",
    "Seen",
    "cloud_app",
    "cloud_settings",
    "deepgram_app",
    "elevenlabs_app",
    "openai_app",
    "tone_pcm16",
    "tone_ulaw",
]

_HEADERS_OF_INTEREST = ("authorization", "xi-api-key", "content-type")


@dataclass
class Seen:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased; only Authorization, xi-api-key, Content-Type
    json: Any = None  # parsed JSON body (OpenAI, ElevenLabs), else None
    body_len: int = 0  # raw body size (Deepgram audio)

    @property
    def messages(self) -> list[dict]:
        """The OpenAI ``messages`` of this request ([] for other vendors)."""
        return list((self.json or {}).get("messages", [])) if isinstance(self.json, dict) else []


@dataclass
class FakeBehaviour:
    """Script for a fake vendor, and its record of what it saw."""

    mode: str = "ok"
    first_delay_s: float = 0.0
    tokens_per_s: float = 0.0
    chunk_delay_s: float = 0.0
    chunk_size: int = 1600
    hang_s: float = 30.0
    transcript: str = "What time do you open tomorrow?"
    hear: Any = None  # Deepgram: callable(wav body) -> transcript or None (then ``transcript``)
    reply: str = "We open at nine tomorrow morning."
    tool_call: str | None = None  # e.g. "transfer_call": streamed after the reply text
    # OpenAI, one entry per request in order (then ``reply``/``tool_call``): {"reply": text,
    # "tool_calls": [(name, arguments_json), ...]}; arguments stream in small fragments by index
    script: list[dict] = field(default_factory=list)
    arg_piece: int = 7  # characters of tool-call arguments per streamed fragment
    reject_tools: bool = False  # OpenAI: 400 when the request carries "tools"
    tools_need_choice: bool = False  # OpenAI: tools without tool_choice are ignored (llama.cpp)
    stream_tools: str = "ok"  # OpenAI: "error_event" | "close" | "500" for streamed requests with tools
    ramble: bool = False  # OpenAI: the reply never ends (until max_tokens if honoured)
    honour_max_tokens: bool = True
    token_chars: int = 0  # OpenAI: stream pieces of this many characters (0 = word by word)
    context_tokens: int | None = None  # OpenAI: 400 context_length_exceeded past this
    refuse_params: tuple[str, ...] = ()  # OpenAI: 400 "Unsupported parameter" for these (e.g. "max_tokens")
    chars_per_token: float = 4.0
    audio: bytes | None = None  # ElevenLabs: served as-is; None = a tone sized to the text
    speak: Any = None  # ElevenLabs: callable(text, output_format) -> bytes, real speech (e.g. piper)
    ms_per_char: int = 60  # ElevenLabs default audio length
    fail_left: int | None = None  # apply ``mode`` to this many requests, then behave ("ok")
    requests: list[Seen] = field(default_factory=list)

    @property
    def last(self) -> Seen:
        return self.requests[-1]

    def status(self) -> int | None:
        return int(self.mode) if self.mode.isdigit() else None

    def take(self) -> tuple[str, int | None]:
        """The mode for this request: ``mode`` while ``fail_left`` is None or > 0
        (counting down), then "ok"."""
        if self.fail_left is not None:
            if self.fail_left <= 0:
                return "ok", None
            self.fail_left -= 1
        return self.mode, self.status()


# ---------------------------------------------------------------- audio helpers


def tone_pcm16(ms: int, rate: int = 16000, freq: float = 220.0, amp: int = 6000) -> bytes:
    """A sine tone as mono PCM16 little-endian."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def tone_ulaw(ms: int, freq: float = 220.0) -> bytes:
    """A sine tone as raw 8 kHz mu-law (what Twilio plays)."""
    return mulaw.encode(tone_pcm16(ms, 8000, freq))


# ---------------------------------------------------------------- shared plumbing

async def _record(state: FakeBehaviour, request: web.Request, *, as_json: bool) -> tuple[Seen, bytes]:
    body = await request.read()
    parsed = None
    if as_json and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    headers = {k: request.headers[k] for k in _HEADERS_OF_INTEREST if k in request.headers}
    seen = Seen(request.method, request.path, dict(request.query), headers, parsed, len(body))
    state.requests.append(seen)
    return seen, body


def _gone(request: web.Request) -> bool:
    t = request.transport
    return t is None or t.is_closing()


async def _hang(request: web.Request, seconds: float) -> None:
    """Sleep ``seconds``, returning early once the client has gone away."""
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end and not _gone(request):
        await asyncio.sleep(0.02)


def _abort(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    return web.Response()  # never reaches the client


def _json_error(status: int, body: dict) -> web.Response:
    return web.json_response(body, status=status)


# ---------------------------------------------------------------- Deepgram


def _deepgram_result(transcript: str, body_len: int) -> dict:
    duration = round(max(0, body_len - 44) / 2 / 16000, 3)
    words = []
    tokens = transcript.split()
    step = duration / max(1, len(tokens))
    for i, tok in enumerate(tokens):
        words.append(
            {
                "word": re.sub(r"[^\w']", "", tok).lower(),
                "start": round(i * step, 3),
                "end": round((i + 1) * step, 3),
                "confidence": 0.98,
                "punctuated_word": tok,
            }
        )
    model = str(uuid.uuid4())
    return {
        "metadata": {
            "transaction_key": "deprecated",
            "request_id": str(uuid.uuid4()),
            "sha256": "0" * 64,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "duration": duration,
            "channels": 1,
            "models": [model],
            "model_info": {model: {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"}},
        },
        "results": {
            "channels": [
                {"alternatives": [{"transcript": transcript, "confidence": 0.98 if tokens else 0.0, "words": words}]}
            ]
        },
    }


def _deepgram_routes(state: FakeBehaviour) -> list[web.RouteDef]:
    async def listen(request: web.Request) -> web.StreamResponse:
        seen, body = await _record(state, request, as_json=False)
        mode, status = state.take()
        if mode == "reset":
            return _abort(request)
        if mode == "hang":
            await _hang(request, state.hang_s)
            return _abort(request)
        if status is not None:
            code = {429: "TOO_MANY_REQUESTS", 401: "INVALID_AUTH", 403: "INSUFFICIENT_PERMISSIONS"}.get(status, "ERROR")
            return _json_error(status, {"err_code": code, "err_msg": "fake error", "request_id": str(uuid.uuid4())})
        if not body.startswith(b"RIFF"):
            return _json_error(400, {"err_code": "Bad Request", "err_msg": "corrupt or unsupported data"})
        await asyncio.sleep(state.first_delay_s)
        if mode == "garbage":
            return web.Response(text="<html>upstream oops</html>", content_type="text/html")
        if mode == "shape":
            return web.json_response({"metadata": {"request_id": str(uuid.uuid4())}, "result": "?"})
        heard = state.hear(body) if state.hear is not None and mode != "empty" else None
        text = "" if mode == "empty" else heard or state.transcript
        return web.json_response(_deepgram_result(text, seen.body_len))

    return [web.post("/v1/listen", listen)]


# ---------------------------------------------------------------- OpenAI


def _sse(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


STREAM_TOOLS_ERROR = "Automatic streaming tool choice is not supported"
RAMBLE = ("Well, let me tell you about the building. ", "It has a lovely lobby, and the lifts were redone last year. ",
          "There is also a garden out back, which the residents enjoy in summer. ", "And the laundry room is on the ground floor. ")


def _tokens(text: str, size: int) -> list[str]:
    if size > 0:
        return [text[i : i + size] for i in range(0, len(text), size)]
    return re.findall(r"\s*\S+", text)


def _context_error(state: FakeBehaviour, req: dict, tools_used: bool) -> web.Response | None:
    """llama-cpp-python's answer to a prompt longer than its context (its server/errors.py)."""
    if state.context_tokens is None:
        return None
    size = len(json.dumps(req.get("messages", []))) + (len(json.dumps(req.get("tools", []))) if tools_used else 0)
    prompt = int(size / state.chars_per_token)
    want = int(req.get("max_tokens") or 0)
    if prompt + want <= state.context_tokens:
        return None
    message = (f"This model's maximum context length is {state.context_tokens} tokens. However, you requested "
               f"{prompt + want} tokens ({prompt} in the messages, {want} in the completion). "
               "Please reduce the length of the messages or completion.")
    return _json_error(400, {"error": {"message": message, "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})


def _openai_routes(state: FakeBehaviour) -> list[web.RouteDef]:
    async def models(request: web.Request) -> web.Response:
        state.requests.append(Seen(request.method, request.path, dict(request.query), {}))
        return web.json_response({"object": "list", "data": [{"id": "gpt-fake", "object": "model", "owned_by": "fake"}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        seen, _ = await _record(state, request, as_json=True)
        req = seen.json if isinstance(seen.json, dict) else {}
        mode, status = state.take()
        if mode == "reset":
            return _abort(request)
        if mode == "hang":
            await _hang(request, state.hang_s)
            return _abort(request)
        if state.reject_tools and req.get("tools"):
            msg = {"message": "fake-model does not support tools", "type": "invalid_request_error", "param": None}
            return _json_error(400, {"error": {**msg, "code": None}})
        if status is not None:
            kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
            return _json_error(status, {"error": {"message": "fake error", "type": kind, "param": None, "code": kind}})
        refused = next((p for p in state.refuse_params if p in req), None)
        if refused is not None:  # as OpenAI answers a parameter a model does not take
            message = f"Unsupported parameter: '{refused}' is not supported with this model."
            if refused == "max_tokens":
                message += " Use 'max_completion_tokens' instead."
            return _json_error(400, {"error": {"message": message, "type": "invalid_request_error", "param": refused, "code": "unsupported_parameter"}})
        tools_used = bool(req.get("tools")) and (req.get("tool_choice") is not None or not state.tools_need_choice)
        too_long = _context_error(state, req, tools_used)
        if too_long is not None:
            return too_long
        streamed_tools_fail = req.get("stream") and tools_used and state.stream_tools != "ok"
        if streamed_tools_fail and state.stream_tools == "500":
            return _json_error(500, {"error": {"message": STREAM_TOOLS_ERROR, "type": "internal_server_error", "param": None, "code": None}})
        if streamed_tools_fail:  # llama-cpp-python: headers sent, then the handler raised
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            if state.stream_tools == "error_event":
                await resp.write(_sse({"error": {"message": STREAM_TOOLS_ERROR, "type": "internal_server_error", "code": None}}))
            return await _end(resp)
        model = req.get("model", "gpt-fake")
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        step = state.script.pop(0) if state.script else {}
        text = "" if mode == "empty" else step.get("reply", state.reply)
        tool_calls = step.get("tool_calls", [(state.tool_call, "{}")] if state.tool_call else [])
        if state.tools_need_choice and not tools_used:
            tool_calls = []  # the model never saw the tools
        limit = int(req.get("max_tokens") or req.get("max_completion_tokens") or 0) if state.honour_max_tokens else 0
        if state.ramble:
            text, tool_calls = "".join(RAMBLE * (1 + (limit or 400) // 20)), []
        tokens = _tokens(text, state.token_chars)
        length = bool(limit and len(tokens) > limit)
        tokens = tokens[:limit] if length else tokens
        n_in = int((len(json.dumps(req.get("messages", []))) + (len(json.dumps(req.get("tools", []))) if tools_used else 0)) / state.chars_per_token)
        if not req.get("stream"):
            await asyncio.sleep(state.first_delay_s)
            message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens) or None}
            if tool_calls and mode != "empty":
                message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                                          "function": {"name": name, "arguments": args}} for name, args in tool_calls]
            finish = "length" if length else "tool_calls" if message.get("tool_calls") else "stop"
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": n_in, "completion_tokens": len(tokens), "total_tokens": n_in + len(tokens)},
                }
            )

        def chunk(delta: dict, finish: str | None = None) -> dict:
            c = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [c]}

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if mode == "garbage":
            await resp.write(b"data: not-json\n\n")
            return await _end(resp)
        if mode == "shape":
            await resp.write(_sse({"id": cid, "object": "chat.completion.chunk", "nothing": True}))
            await resp.write(_sse(b"[DONE]"))
            return await _end(resp)
        await resp.write(_sse(chunk({"role": "assistant", "content": "", "refusal": None})))
        await asyncio.sleep(state.first_delay_s)
        gap = 1.0 / state.tokens_per_s if state.tokens_per_s > 0 else 0.0
        i = 0
        while i < len(tokens) or (state.ramble and not limit):
            tok = tokens[i % len(tokens)]
            if i and gap:
                await asyncio.sleep(gap)
            elif i % 50 == 49:
                await asyncio.sleep(0)  # an endless stream still lets the loop breathe
            if _gone(request):
                return _abort(request)
            await resp.write(_sse(chunk({"content": tok})))
            i += 1
            if mode == "stall":
                await _hang(request, state.hang_s)
                return _abort(request)
            if mode == "cut":
                return _abort(request)
            if mode == "error_event":
                await resp.write(_sse({"error": {"message": "fake mid-stream error", "type": "server_error"}}))
                return await _end(resp)
        finish = "length" if length else "stop"
        if tool_calls and mode != "empty":
            for k, (name, args) in enumerate(tool_calls):  # as OpenAI streams them: id+name, then argument pieces
                call = {"index": k, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function"}
                await resp.write(_sse(chunk({"tool_calls": [{**call, "function": {"name": name, "arguments": ""}}]})))
                n = max(1, state.arg_piece)
                for j in range(0, len(args), n):
                    await resp.write(_sse(chunk({"tool_calls": [{"index": k, "function": {"arguments": args[j : j + n]}}]})))
            finish = "tool_calls"
        await resp.write(_sse(chunk({}, finish)))
        if (req.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": n_in, "completion_tokens": len(tokens), "total_tokens": n_in + len(tokens)}
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
            await resp.write(_sse({**base, "choices": [], "usage": usage}))
        await resp.write(_sse(b"[DONE]"))
        return await _end(resp)

    return [web.post("/v1/chat/completions", completions), web.get("/v1/models", models)]


async def _end(resp: web.StreamResponse) -> web.StreamResponse:
    await resp.write_eof()
    return resp


# ---------------------------------------------------------------- ElevenLabs


def _el_audio(state: FakeBehaviour, text: str, output_format: str) -> bytes | None:
    if state.audio is not None:
        return state.audio
    if state.speak is not None:
        return state.speak(text, output_format)
    ms = max(200, state.ms_per_char * len(text))
    if output_format == "ulaw_8000":
        return tone_ulaw(ms)
    m = re.fullmatch(r"pcm_(\d+)", output_format)
    return tone_pcm16(ms, int(m.group(1))) if m else None


def _elevenlabs_routes(state: FakeBehaviour) -> list[web.RouteDef]:
    async def tts(request: web.Request) -> web.StreamResponse:
        seen, _ = await _record(state, request, as_json=True)
        req = seen.json if isinstance(seen.json, dict) else {}
        mode, status = state.take()
        if mode == "reset":
            return _abort(request)
        if mode == "hang":
            await _hang(request, state.hang_s)
            return _abort(request)
        if status is not None:
            detail = {"status": "fake_error", "message": "fake error"}
            if status == 422:
                detail = [{"loc": ["body", "text"], "msg": "field required", "type": "value_error.missing"}]
            return _json_error(status, {"detail": detail})
        fmt = seen.query.get("output_format", "mp3_44100_128")
        audio = _el_audio(state, str(req.get("text", "")), fmt)
        if audio is None or not isinstance(req.get("text"), str):
            return _json_error(422, {"detail": [{"loc": ["query", "output_format"], "msg": "unsupported"}]})
        if mode == "garbage":
            return web.json_response({"detail": {"status": "ok", "message": "this is not audio"}})
        ctype = "audio/basic" if fmt.startswith("ulaw") else "application/octet-stream"
        if mode == "shape":
            audio = b"<html><body>Service page</body></html>"
        if mode == "empty":
            audio = b""
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await asyncio.sleep(state.first_delay_s)
        size = max(1, state.chunk_size)
        for i in range(0, len(audio), size):
            if i and state.chunk_delay_s:
                await asyncio.sleep(state.chunk_delay_s)
            await resp.write(audio[i : i + size])
            if mode == "stall":
                await _hang(request, state.hang_s)
                return _abort(request)
            if mode == "cut":
                return _abort(request)
        return await _end(resp)

    return [
        web.post("/v1/text-to-speech/{voice_id}/stream", tts),
        web.post("/v1/text-to-speech/{voice_id}", tts),
    ]


# ---------------------------------------------------------------- factories


def deepgram_app(state: FakeBehaviour) -> web.Application:
    app = web.Application()
    app.add_routes(_deepgram_routes(state))
    return app


def openai_app(state: FakeBehaviour) -> web.Application:
    app = web.Application()
    app.add_routes(_openai_routes(state))
    return app


def elevenlabs_app(state: FakeBehaviour) -> web.Application:
    app = web.Application()
    app.add_routes(_elevenlabs_routes(state))
    return app


def cloud_settings(base: Any, root: str, timeout: float, **changes: Any) -> Any:
    """``base`` (a Settings) with the three cloud providers, keys set, and their base URLs
    at a fakes server whose root URL is ``root``; every stage budget ``timeout``."""
    return base.with_(
        stt_provider="deepgram", llm_provider="openai", tts_provider="elevenlabs",
        deepgram_api_key="dg-key", openai_api_key="sk-key", elevenlabs_api_key="xi-key",
        deepgram_base_url=root, openai_base_url=root + "/v1", elevenlabs_base_url=root,
        stt_timeout=timeout, llm_timeout=timeout, tts_timeout=timeout, **changes,
    )


def cloud_app(*, stt: FakeBehaviour, llm: FakeBehaviour, tts: FakeBehaviour) -> web.Application:
    """All three fakes on one server: Deepgram and ElevenLabs at the root, OpenAI at /v1."""
    app = web.Application()
    app.add_routes(_deepgram_routes(stt) + _openai_routes(llm) + _elevenlabs_routes(tts))
    return app
