"""A Pipecat Twilio Media Streams bot, built the way Pipecat's own Twilio examples build one,
for benchmarking phonebot side by side on the same wire fakes. Runs in its OWN environment
(pipecat is not a phonebot dependency)::

    uv run --no-project --python 3.11 --with-requirements bench/peers/pipecat/requirements.txt \
        python bench/peers/pipecat/bot.py --port 8765 --fakes http://127.0.0.1:PORT

FastAPI + uvicorn: ``POST /twilio/voice`` answers with ``<Connect><Stream>`` TwiML, ``/ws``
is the Media Streams websocket (FastAPIWebsocketTransport + TwilioFrameSerializer).
Pipeline: Deepgram live STT -> user aggregator (Silero VAD, Pipecat's default user turn
strategies: VAD/transcription start, Smart Turn v3 stop) -> OpenAI LLM -> ElevenLabs TTS
(the HTTP streaming service: the fakes speak HTTP, not ElevenLabs' websocket) -> output.
Twilio signatures are NOT checked (Pipecat's examples do not check them either); the
simulated callers are started without an auth token for this bot. No REST hang-up
(``auto_hang_up=False``): the fakes have no Twilio REST API.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import aiohttp
import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

SYSTEM = ("You are a friendly receptionist answering the phone. Keep answers to one or two short sentences. "
          "Your output is spoken aloud, so use no special characters.")

app = FastAPI()
FAKES = os.environ.get("PEER_FAKES", "http://127.0.0.1:9")  # set by main()


@app.post("/twilio/voice")
async def voice(request: Request) -> Response:
    host = request.headers.get("host", "127.0.0.1")
    twiml = ('<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
             f'<Stream url="wss://{host}/ws"></Stream></Connect><Pause length="40"/></Response>')
    return Response(content=twiml, media_type="application/xml")


@app.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    _, call = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(
        stream_sid=call["stream_id"], call_sid=call["call_id"],
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False,
                                      serializer=serializer),
    )
    async with aiohttp.ClientSession() as session:
        stt = DeepgramSTTService(api_key="dg-bench", base_url=FAKES)
        llm = OpenAILLMService(api_key="sk-bench", base_url=FAKES + "/v1",
                               settings=OpenAILLMService.Settings(model="gpt-4.1-mini"))
        tts = ElevenLabsHttpTTSService(api_key="el-bench", aiohttp_session=session, base_url=FAKES,
                                       settings=ElevenLabsHttpTTSService.Settings(voice="21m00Tcm4TlvDq8ikWAM"))
        context = LLMContext([{"role": "system", "content": SYSTEM}])
        user, assistant = LLMContextAggregatorPair(
            context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()))
        pipeline = Pipeline([transport.input(), stt, user, llm, tts, transport.output(), assistant])
        task = PipelineTask(pipeline, params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000,
                                                            enable_metrics=True))

        @transport.event_handler("on_client_connected")
        async def greet(transport, client) -> None:
            context.add_message({"role": "system", "content": "Greet the caller and ask how you can help."})
            await task.queue_frames([LLMRunFrame()])

        @transport.event_handler("on_client_disconnected")
        async def gone(transport, client) -> None:
            await task.cancel()

        await PipelineRunner(handle_sigint=False).run(task)


@app.get("/readyz")
async def readyz() -> dict:
    return {"ok": True}


def main() -> int:
    global FAKES
    ap = argparse.ArgumentParser(description="Pipecat Twilio bot on the phonebot bench fakes")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fakes", required=True, help="base URL of bench/fakes_server.py (started with --live)")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    FAKES = args.fakes.rstrip("/")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # PipelineTask/Runner: 1.x names, still what the examples use
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=1 << 20, backlog=1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
