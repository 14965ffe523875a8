"""Whole SIP calls through the app (create_app with SIP_LISTEN) on the real RTP media:
SIPp speaks from a pcap and keys a digit (RFC 4733), the engine hears it, answers over RTP,
and the call is recorded like a Twilio call."""

from __future__ import annotations

import logging
from pathlib import Path

from bot.providers.registry import Providers
from bot.settings import Settings
from handlers.app import create_app
from handlers.state import CALLS, METRICS
from handlers.storage import PENDING, STORE
from media import mulaw
from tests.conftest import eventually, trimmed_speech
from tests.fakes.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from tests.sip_rig import needs_sipp, rtp_call_scenario, sipp, write_pcap

pytestmark = needs_sipp

DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")


def sip_app(tmp_path: Path, **kw):
    s = Settings(
        data_dir=tmp_path, twilio_validate=False, trial=True, stt_timeout=2, llm_timeout=2, tts_timeout=2, end_silence_ms=500,
        sip_listen=(("udp", "127.0.0.1", 0),), sip_allow=("127.0.0.1/32",), rtp_ports=(31000, 31999), **kw,
    )
    p = Providers(stt=ScriptedSTT(), llm=ScriptedLLM(), tts=ScriptedTTS())
    return create_app(s, providers=p, embedded_prompt_fallback=False), p


async def test_a_sipp_call_with_rtp_is_heard_answered_and_recorded(aiohttp_server, tmp_path, caplog):
    from bot.carriers.sip.carrier import SIP_SERVER

    caplog.set_level(logging.INFO)
    app, p = sip_app(tmp_path)
    await aiohttp_server(app)
    host, port = app[SIP_SERVER].endpoint.local_addr("udp")
    voice = mulaw.encode(trimmed_speech("open_tomorrow_joe.wav"))
    pcap = write_pcap(tmp_path / "voice.pcap", b"\xff" * 8000 + voice + b"\xff" * 8000)
    dtmf = DTMF_PCAP if DTMF_PCAP.exists() else None
    scenario = rtp_call_scenario(tmp_path / "call.xml", pcap, hold_ms=len(voice) // 8 + 4000, dtmf_pcap=dtmf)
    r = await sipp(f"{host}:{port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", cwd=tmp_path, timeout=40)
    assert r.rc == 0, r.out
    await eventually(lambda: len(app[CALLS]) == 0 and "call ended" in caplog.text, within_s=10)
    # the engine heard the caller's speech over RTP: about its length went to STT
    heard_s = [n / 2 / rate for n, rate in p.stt.calls]
    assert heard_s and abs(max(heard_s) - len(voice) / 8000) < 1.5, heard_s
    assert p.llm.seen, "the engine replied"
    ended = next(rec for rec in caplog.records if rec.getMessage() == "call ended")
    fields = ended.__dict__.get("fields") or {}
    assert fields.get("transport") == "sip" and fields.get("ended_by") == "caller"
    assert fields["rtp_packets_out"] > 100 and fields["rtp_packets_in"] > len(voice) // 160, fields
    assert fields["caller"] != "+14155550177" and fields["caller"].endswith("77")  # masked
    # recorded like a Twilio call
    rec = await app[STORE].call(fields["call_sid"])
    assert rec is not None and rec.caller == "+14155550177"
    assert app[METRICS].calls._value.get() >= 1
    if dtmf is not None:
        assert fields["rtp_dtmf_in"] >= 1, fields  # RFC 4733 key 1 from SIPp's pcap


async def test_a_caller_that_stops_sending_media_is_hung_up(aiohttp_server, tmp_path, caplog):
    """RTP stops (the caller's network dropped) while the dialog stays up: MEDIA_TIMEOUT_S
    later the bot ends the call and sends BYE, which SIPp answers."""
    from bot.carriers.sip.carrier import SIP_SERVER

    caplog.set_level(logging.INFO)
    app, _ = sip_app(tmp_path, media_timeout_s=2.0)
    await aiohttp_server(app)
    host, port = app[SIP_SERVER].endpoint.local_addr("udp")
    scenario = tmp_path / "silent.xml"
    scenario.write_text((Path(__file__).parent / "sip" / "call_then_bye_from_bot.xml").read_text())
    r = await sipp(f"{host}:{port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", cwd=tmp_path, timeout=20)
    assert r.rc == 0, r.out
    await eventually(lambda: len(app[CALLS]) == 0 and "call ended" in caplog.text, within_s=10)
    assert "sip bye sent" in caplog.text
    # whichever saw it first (the RTP timeout or the session's watchdog), the call ended on lost media
    fields, rec = await _ended(app, caplog)
    assert (fields["ended_by"], fields["limit"]) == ("silence", "no_media"), fields
    assert rec is not None and rec.ended_by == "silence"



async def _transfer_call(aiohttp_server, tmp_path, scenario_name: str):
    from bot.carriers.sip.carrier import SIP_SERVER
    from bot.conversation import Action

    app, p = sip_app(tmp_path)
    p.llm.actions = [Action(kind="transfer", purpose="front_desk", number="+14155550100")]
    await aiohttp_server(app)
    host, port = app[SIP_SERVER].endpoint.local_addr("udp")
    voice = mulaw.encode(trimmed_speech("real_person_joe.wav"))
    pcap = write_pcap(tmp_path / "voice.pcap", b"\xff" * 8000 + voice + b"\xff" * 8000)
    scenario = tmp_path / "transfer.xml"
    scenario.write_text((Path(__file__).parent / "sip" / scenario_name).read_text().replace("PCAP", str(pcap)))
    r = await sipp(f"{host}:{port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", cwd=tmp_path, timeout=40)
    await eventually(lambda: len(app[CALLS]) == 0, within_s=10)
    return r, app


async def _ended(app, caplog):
    """The call-end log line's fields and the call's record in the store."""
    ended = next(rec for rec in caplog.records if rec.getMessage() == "call ended")
    fields = ended.__dict__["fields"]
    await eventually(lambda: not app[PENDING], within_s=5)
    return fields, await app[STORE].call(fields["call_sid"])


async def test_a_transfer_is_a_refer_and_the_bot_hangs_up_once_the_target_answers(aiohttp_server, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    r, app = await _transfer_call(aiohttp_server, tmp_path, "transfer_refer.xml")
    assert r.rc == 0, r.out
    assert "transfer done" in caplog.text and "transfer refused" not in caplog.text
    fields, rec = await _ended(app, caplog)
    assert (fields["outcome"], fields["ended_by"]) == ("transferred", "transfer")
    assert rec is not None and (rec.outcome, rec.ended_by) == ("transferred", "transfer") and rec.transfer is not None


async def test_a_refused_refer_is_said_to_the_caller_before_the_bye(aiohttp_server, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    r, app = await _transfer_call(aiohttp_server, tmp_path, "transfer_refused.xml")
    assert r.rc == 0, r.out
    assert "transfer refused" in caplog.text
    refused = next(rec for rec in caplog.records if rec.getMessage() == "transfer refused")
    bye = next(rec for rec in caplog.records if rec.getMessage() == "sip bye sent")
    assert bye.created - refused.created >= 0.3  # the fallback prompt played between them
    # the owner sees a failed transfer, not a transferred call: in the log, the metrics and the record
    fields, rec = await _ended(app, caplog)
    assert (fields["outcome"], fields["ended_by"]) == ("transfer_failed", "transfer_failed")
    assert rec is not None and (rec.outcome, rec.ended_by) == ("transfer_failed", "transfer_failed")
    assert rec.transfer is not None and rec.transfer.purpose == "front_desk"  # where it was tried
    assert app[METRICS].calls_ended.labels("transfer_failed", "transfer_failed")._value.get() == 1


async def test_the_sip_caller_of_bot_call_dials_speaks_keys_and_hangs_up(aiohttp_server, tmp_path, caplog):
    """``python -m bot call --sip``'s client (bot/carriers/sip/uac.py) against the app, with
    digest auth on: it answers the challenge, hears the greeting, says an utterance, keys a
    digit by INFO, hears the reply and hangs up by BYE."""
    from bot.carriers.sip.carrier import SIP_SERVER
    from bot.carriers.sip.uac import place_call

    caplog.set_level(logging.INFO)
    app, p = sip_app(tmp_path, sip_username="pbx", sip_password="digest-pass-9")
    await aiohttp_server(app)
    host, port = app[SIP_SERVER].endpoint.local_addr("udp")
    voice = mulaw.encode(trimmed_speech("open_tomorrow_joe.wav"))
    report = await place_call(host, port, [voice, "5"], username="pbx", password="digest-pass-9", quiet_s=0.8, max_wait_s=15)
    assert report.answered and not report.error, report
    assert report.events[0].startswith("100") and any(e.startswith("greeting heard") for e in report.events), report.events
    assert report.latencies_ms and 0 < report.latencies_ms[0] < 10_000, report.latencies_ms
    assert report.hung_up_by == "caller" and len(report.heard) > 8000
    await eventually(lambda: len(app[CALLS]) == 0, within_s=10)
    assert app[SIP_SERVER].refused.get("auth_missing") == 1  # the first INVITE was challenged
    heard_s = [n / 2 / rate for n, rate in p.stt.calls]
    assert heard_s and abs(max(heard_s) - len(voice) / 8000) < 1.5, heard_s


async def test_rtp_from_a_stranger_is_dropped_and_a_draining_bot_refuses_new_calls(aiohttp_server, tmp_path, caplog):
    """While SIPp talks, loud RTP from another address (127.0.0.2) hits the call's port: the
    bot never hears it (the engine's STT gets only the caller's utterance). Then the app
    drains: OPTIONS and a new INVITE get 503, counted in phonebot_calls_rejected."""
    import asyncio
    import socket
    import struct

    from bot.carriers.sip.carrier import SIP_SERVER
    from handlers.state import DRAINING
    from tests.sip_rig import SCENARIOS

    caplog.set_level(logging.INFO)
    app, p = sip_app(tmp_path)
    await aiohttp_server(app)
    server = app[SIP_SERVER]
    host, port = server.endpoint.local_addr("udp")
    voice = mulaw.encode(trimmed_speech("open_tomorrow_joe.wav"))
    pcap = write_pcap(tmp_path / "voice.pcap", b"\xff" * 8000 + voice + b"\xff" * 16000)
    scenario = rtp_call_scenario(tmp_path / "call.xml", pcap, hold_ms=len(voice) // 8 + 3500)
    call = asyncio.create_task(sipp(f"{host}:{port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", cwd=tmp_path, timeout=40))
    await eventually(lambda: any(c.media is not None and c.answered for c in server.calls.values()), within_s=10)
    rtp_port = next(iter(server.calls.values())).media.local_port
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    loud = mulaw.encode(struct.pack("<160h", *([12000, -12000] * 80)))
    for i in range(150):  # 3 s of loud "speech" with the caller's payload type
        stranger.sendto(struct.pack("!BBHII", 0x80, 0, i, i * 160, 0xBAD) + loud, ("127.0.0.1", rtp_port))
        await asyncio.sleep(0.02)
    stranger.close()
    r = await call
    assert r.rc == 0, r.out
    await eventually(lambda: len(app[CALLS]) == 0 and "call ended" in caplog.text, within_s=10)
    ended = next(rec for rec in caplog.records if rec.getMessage() == "call ended")
    assert ended.__dict__["fields"]["rtp_strangers"] >= 100, ended.__dict__["fields"]
    heard_s = [n / 2 / rate for n, rate in p.stt.calls]
    assert heard_s and max(heard_s) < len(voice) / 8000 + 1.5, heard_s  # the stranger's 3 s never reached a turn

    app[DRAINING].on = True
    refused = tmp_path / "refused.xml"
    refused.write_text((SCENARIOS / "invite_refused.xml").read_text().replace("EXPECT", "503"))
    r = await sipp(f"{host}:{port}", "-sf", str(refused), "-m", "1", "-i", "127.0.0.1", cwd=tmp_path, timeout=10)
    assert r.rc == 0, r.out
    assert app[METRICS].calls_rejected.labels("sip_draining")._value.get() == 1


def test_bot_call_sip_needs_host_and_port(capsys):
    from bot.shell.cli_call import main

    assert main(["--sip", "no-port-here", "examples/callers/yes_joe.wav", "--no-transcribe"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().out


async def test_sip_drops_and_refusals_show_in_metrics(aiohttp_server, tmp_path):
    """What the SIP listener drops never stays in memory only: an INVITE from outside
    SIP_ALLOW (a raw datagram from 127.0.0.2), a malformed datagram from the trunk and an
    INVITE without credentials (digest on) show in /metrics as phonebot_sip_dropped_total
    and phonebot_calls_rejected_total, and never reach the engine."""
    import asyncio
    import socket

    import aiohttp

    from bot.carriers.sip.carrier import SIP_SERVER
    from tests.test_sip_signalling import _invite

    def metric(text: str, name: str, reason: str) -> float:
        line = next((ln for ln in text.splitlines() if ln.startswith(f'{name}{{reason="{reason}"}} ')), None)
        return float(line.split()[-1]) if line else 0.0

    app, p = sip_app(tmp_path, sip_username="pbx", sip_password="digest-pass-9")
    server = await aiohttp_server(app)
    host, port = app[SIP_SERVER].endpoint.local_addr("udp")
    async with aiohttp.ClientSession() as http:
        before = await (await http.get(server.make_url("/metrics"))).text()
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.2", 0))
        stranger.settimeout(5)
        trunk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        trunk.bind(("127.0.0.1", 0))
        trunk.settimeout(5)
        try:
            for i in range(3):
                stranger.sendto(_invite(i, stranger.getsockname()[1]), (host, port))
                assert (await asyncio.to_thread(stranger.recv, 4096)).startswith(b"SIP/2.0 403")
            trunk.sendto(b"INVITE  SIP/2.0\r\n\r\n", (host, port))  # malformed: dropped
            ours = _invite(9, trunk.getsockname()[1]).replace(b"127.0.0.2", b"127.0.0.1")
            trunk.sendto(ours, (host, port))  # from the trunk, no credentials: challenged
            while not (got := await asyncio.to_thread(trunk.recv, 4096)).startswith(b"SIP/2.0 4"):
                pass
            assert got.startswith(b"SIP/2.0 401"), got[:40]
        finally:
            stranger.close()
            trunk.close()
        after = await (await http.get(server.make_url("/metrics"))).text()
    assert metric(before, "phonebot_sip_dropped_total", "forbidden") == 0
    assert metric(after, "phonebot_sip_dropped_total", "forbidden") == 3
    assert metric(after, "phonebot_sip_dropped_total", "malformed") == 1
    assert metric(after, "phonebot_calls_rejected_total", "sip_auth_missing") == 1
    assert app[SIP_SERVER].endpoint.counts["forbidden"] == 3  # the listener's own count agrees
    assert not p.stt.calls and not p.llm.seen and len(app[CALLS]) == 0
