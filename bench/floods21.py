"""Issue 21's attacks as floods for bench/http_attacks.py (each runs in a process of its
own next to the live call; ``got`` collects what the attacker saw):

- ``dtmf``: two attacker calls at a time leave a message through the embedded
  receptionist's form and type a 1,000-digit callback number (the issue's 10 GB
  read-back), again and again;
- ``lockout``: 30 source addresses (127.0.0.2-31) send wrong keys to /v1, the console
  form and /phone?key= about once a second each, while the owner's right key is tried
  at every door twice a second: ``owner_refused`` must stay 0;
- ``forms``: 127-byte truncated multipart posts (and other odd bodies) to the four form
  routes in four loops; the bot's log must gain no traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from pathlib import Path

import aiohttp

KEY = "bench-key-" + "0" * 20
TOKEN = ""  # the bot's TWILIO_AUTH_TOKEN, set by the flood process
NAME_WAV = ""  # a caller saying a name, rendered once by the bench (piper)
CALLERS = Path(__file__).resolve().parents[2] / "shared" / "audio" / "callers"


async def flood_dtmf(http, url: str, until: float, got: Counter) -> None:
    from bot.carriers.twilio.simulator import simulate_call
    from bot.simulator import Dtmf

    steps = [Dtmf("3"), CALLERS / "package_joe.wav", Path(NAME_WAV), Dtmf("5" * 1000)]

    async def caller() -> None:
        while time.monotonic() < until:
            r = await simulate_call(url, steps, auth_token=TOKEN, gap_s=0.5, session=http, max_wait_s=25)
            got["attacker_calls"] += 1
            got["attacker_turns_answered"] += sum(1 for t in r.turns if t.first_audio_ms is not None)
            got["attacker_heard_s_max"] = max(got["attacker_heard_s_max"], round(len(r.heard) / 8000))
            if r.error:
                got["attacker_error:" + r.error[:40]] += 1

    await asyncio.gather(caller(), caller())


async def flood_lockout(http, url: str, until: float, got: Counter) -> None:
    body = b"RIFF"  # past the key, /v1 answers 400 at once (no STT work): the door is what is measured

    turn = itertools.count()

    async def door(session, key: str) -> int:
        kind = next(turn) % 3  # /v1, the console form, /phone?key= in turn
        try:
            if kind == 0:
                async with session.post(url + "/v1/orchestrate", data=body, headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {key}"}) as r:
                    await r.read()
                    return r.status
            if kind == 1:
                async with session.post(url + "/console/login", data={"key": key}, allow_redirects=False) as r:
                    return r.status
            async with session.get(url + f"/phone?key={key}", allow_redirects=False) as r:
                return r.status
        except aiohttp.ClientError:
            return 0

    async def guesser(n: int) -> None:
        conn = aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 2}", 0), force_close=True)
        async with aiohttp.ClientSession(connector=conn) as s:
            i = 0
            while time.monotonic() < until:
                got[f"guess:{await door(s, f'guess-{n}-{i}-0123456789')}"] += 1
                i += 1
                await asyncio.sleep(0.8)

    async def owner() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.99", 0), force_close=True)) as s:
            await asyncio.sleep(2)  # the guessers have emptied the buckets by now
            while time.monotonic() < until:
                status = await door(s, KEY)
                got["owner_tries"] += 1
                got["owner_refused"] += status in (0, 401, 403, 429)  # (/v1's 400 for the stub body: it got in)
                got[f"owner:{status}"] += 1
                await asyncio.sleep(0.3)

    await asyncio.gather(owner(), *(guesser(n) for n in range(30)))


FORM_BODIES = [
    (b'--xx\r\nContent-Disposition: form-data; name="CallSid"\r\n\r\nCA0123456789abcdef0123456789abcdef\r\n--xx\r\nContent-Dispo', "multipart/form-data; boundary=xx"),
    (b"--xx\r\nabc", "multipart/form-data"),
    (b"a=\xff\xfe", "application/x-www-form-urlencoded"),
    (b"a=b", "application/x-www-form-urlencoded; charset=nope"),
]


async def flood_forms(http, url: str, until: float, got: Counter) -> None:
    paths = ["/twilio/voice", "/twilio/status", "/twilio/after", "/console/login"]

    async def loop(k: int) -> None:
        i = 0
        while time.monotonic() < until:
            body, ctype = FORM_BODIES[i % len(FORM_BODIES)]
            try:
                async with http.post(url + paths[(i + k) % 4], data=body, headers={"Content-Type": ctype}) as r:
                    await r.read()
                    got[f"{r.status}"] += 1
            except aiohttp.ClientError as exc:
                got[type(exc).__name__] += 1
            i += 1

    await asyncio.gather(*(loop(k) for k in range(4)))
