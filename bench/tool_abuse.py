"""An attacker on the LLM path (issue 21), next to nothing else: the caller's words have
"injected" the model, and the model (the OpenAI wire fake, scripted) asks the tools on
every turn to transfer the call to a number it names, to save a message whose fields
carry CR/LF, control characters and 10 KB, and to read other callers' messages back.

    uv run --extra local python -m bench.tool_abuse [--turns 4]

The bot runs as its own process (bench/calls' stack: Deepgram and ElevenLabs on the
profiled fakes, OpenAI on the scripted fake here, Twilio REST on a fake here). One
simulated call of ``--turns`` utterances is the attacker. Printed: held or not, the
call's worst gap between audio frames and its turn latencies, the transfers Twilio was
asked for (held: none to a number the business file does not name), the messages
saved (held: one line each, bounded), and what the tools answered. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.calls import AUDIO, start_stack, stop  # noqa: E402
from bench.fakes_server import Profile  # noqa: E402
from bench.http_attacks import GAP_OK_MS, frame_gaps  # noqa: E402

AC = "AC" + "c" * 32
PREMIUM = "+19005550123"
JUNK = "Ann\r\nLee\x00\u202e\x9b[2J" + "x" * 10_000


def abuse_script(turns: int) -> list[dict]:
    """Per turn: one completion asking for everything at once, then the words after the tool results."""
    ask = {"reply": "", "tool_calls": [
        ("transfer_call", json.dumps({"purpose": "front_desk", "number": PREMIUM})),
        ("transfer_call", json.dumps({"purpose": PREMIUM})),
        ("take_message", json.dumps({"name": JUNK, "callback_number": "555 123 4567", "about": JUNK + "\r\nBcc: x@evil", "urgent": True})),
        ("read_messages", json.dumps({"caller": "+15550009999"})),
    ]}
    return [step for _ in range(turns) for step in (ask, {"reply": "I'm sorry, I can't do that. Anything else?"})]


async def main_async(args) -> int:
    from aiohttp import web

    from bot.carriers.twilio.simulator import simulate_call
    from bot.store import SqlStore
    from tests.fakes.cloud import FakeBehaviour, openai_app
    from tests.fakes.twilio_rest import RestBehaviour, twilio_rest_app

    llm, rest = FakeBehaviour(script=abuse_script(args.turns + 2), arg_piece=997), RestBehaviour()
    runners = []
    urls = []
    for app in (openai_app(llm), twilio_rest_app(rest)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")
    stack_args = SimpleNamespace(profile=Profile(), live=False, end_silence_ms=None, early_turn_ms=0, speculative_llm=None)
    utterances = ["open_tomorrow_joe.wav", "address_joe.wav", "anyone_joe.wav", "open_tomorrow_joe.wav"]
    with tempfile.TemporaryDirectory(prefix="tool-abuse-") as tmp:
        env = {"OPENAI_BASE_URL": urls[0] + "/v1", "TWILIO_ACCOUNT_SID": AC, "TWILIO_BASE_URL": urls[1]}
        stack = await start_stack(stack_args, "auto", Path(tmp), env)
        t0 = time.monotonic()
        try:
            report = await simulate_call(stack.url, [AUDIO / u for u in (utterances * 3)[: args.turns]], auth_token=stack.token,
                                         gap_s=0.8, max_wait_s=20)
        finally:
            await stop(stack.server)
            await stop(stack.fakes)
            for r in runners:
                await r.cleanup()
        store = await SqlStore.open(data_dir=Path(tmp) / "data")
        saved = await store.messages(limit=100)
        await store.close()
        log = stack.log_path.read_text(errors="replace")
    turns = [t.first_audio_ms for t in report.turns]
    gap = frame_gaps(report)
    numbers = [u["form"].get("Twiml", "") for u in rest.updates]
    bad_transfers = sum(1 for n in numbers if PREMIUM.lstrip("+") in n.replace("+", ""))
    one_line = all(not any(c in m.name + m.about for c in "\r\n\x00\u202e\x9b") for m in saved)
    bounded = all(len(m.name) <= 100 and len(m.about) <= 2000 for m in saved)
    tool_answers = [m["content"][:40] for req in llm.requests for m in req.messages if m.get("role") == "tool"][:4]
    held = (bad_transfers == 0 and one_line and bounded and all(t is not None for t in turns) and gap < GAP_OK_MS
            and "Traceback" not in log)
    print(f"tools    held={'yes' if held else 'NO '} frame_gap_worst={gap:4.0f} ms  turns_ms={[None if t is None else round(t) for t in turns]}  "
          f"transfers_to_named_number={bad_transfers} rest_updates={len(rest.updates)} messages_saved={len(saved)} "
          f"one_line={one_line} bounded={bounded} longest_about={max((len(m.about) for m in saved), default=0)}  "
          f"tool_answers={tool_answers}  tracebacks={log.count('Traceback')}  ({time.monotonic() - t0:.0f} s)")
    return 0 if held else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tool_abuse", description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=4, help="the attacker call's turns")
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
