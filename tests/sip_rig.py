"""Helpers for the SIP tests: run SIPp (sip-tester) against a port, and a SIP server rig
whose calls are recorded instead of reaching the engine."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.carriers.sip.call_transport import SipTransport
from bot.carriers.sip.dialog import SipCall
from bot.carriers.sip.uas import SipServer
from bot.settings import Settings
from bot.transport import StopIn

SCENARIOS = Path(__file__).parent / "sip"
needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) is not installed")


@dataclass
class SippResult:
    rc: int
    out: str


async def sipp(target: str, *args: str, timeout: float = 30.0, cwd: Path | None = None) -> SippResult:
    """Run sipp to ``target`` (host:port) with ``args``; its exit code 0 = every call succeeded.
    Its media port is a free one (parallel test workers would all take SIPp's default 6000)."""
    if "-mp" not in args:
        args = ("-mp", str(free_media_port()), *args)
    proc = await asyncio.create_subprocess_exec(
        "sipp", target, "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err",
        "-error_file", str((cwd or Path("/tmp")) / "sipp_errors.log"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    errors = (cwd or Path("/tmp")) / "sipp_errors.log"
    extra = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
    return SippResult(proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")[-3000:] + extra)


def free_media_port() -> int:
    """An even UDP port whose odd neighbour is free too (RTP and RTCP)."""
    import socket

    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1] & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                b.bind(("127.0.0.1", port))
                c.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    return 6000


@dataclass
class Rig:
    server: SipServer
    calls: list[SipCall] = field(default_factory=list)
    events: dict[str, list] = field(default_factory=dict)  # call_sid -> inbound events
    media: list = field(default_factory=list)

    @property
    def udp(self) -> str:
        host, port = self.server.endpoint.local_addr("udp")
        return f"{host}:{port}"

    @property
    def tcp(self) -> str:
        host, port = self.server.endpoint.local_addr("tcp")
        return f"{host}:{port}"


async def start_rig(settings: Settings, *, media_factory, hold_s: float = 0.0) -> Rig:
    """A SipServer on 127.0.0.1 (UDP and TCP, free ports) whose calls record their inbound
    events until StopIn (or end themselves after ``hold_s`` when set, as the engine's hang-up)."""
    rig: Rig

    async def start(call: SipCall) -> None:
        rig.calls.append(call)
        transport = SipTransport(call)
        got = rig.events.setdefault(call.call_sid, [])

        async def pump() -> None:
            async for ev in transport.inbound():
                got.append(ev)
                if isinstance(ev, StopIn):
                    return

        try:
            if hold_s:
                try:
                    await asyncio.wait_for(pump(), hold_s)
                except TimeoutError:
                    pass
            else:
                await pump()
        finally:
            await transport.close()

    async def open_media():
        m = await media_factory()
        rig.media.append(m)
        return m

    s = settings.with_(sip_listen=(("udp", "127.0.0.1", 0), ("tcp", "127.0.0.1", 0)))
    rig = Rig(SipServer(s, start_call=start, open_media=open_media))
    await rig.server.start()
    return rig


def write_pcap(path: Path, mulaw: bytes, *, payload_type: int = 0) -> Path:
    """A pcap of RTP packets (20 ms of mu-law each, 20 ms apart) for SIPp's
    ``play_pcap_audio``, which rewrites the addresses and ports and keeps the pacing."""
    import struct

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    ssrc, seq, ts = 0x5EED0001, 1000, 16000
    for i in range(0, len(mulaw) - 159, 160):
        rtp = struct.pack("!BBHII", 0x80, payload_type | (0x80 if i == 0 else 0), seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + mulaw[i : i + 160]
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        t_us = (i // 160) * 20000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame)
        seq, ts = seq + 1, ts + 160
    path.write_bytes(b"".join(out))
    return path


def rtp_call_scenario(path: Path, pcap: Path, *, hold_ms: int, dtmf_pcap: Path | None = None) -> Path:
    """INVITE (PCMU + telephone-event), ACK, play ``pcap`` as the caller's voice (then a
    DTMF key from SIPp's own pcaps), stay ``hold_ms``, BYE."""
    dtmf = f'  <nop><action><exec play_pcap_audio="{dtmf_pcap}"/></action></nop>\n  <pause milliseconds="1000"/>\n' if dtmf_pcap else ""
    path.write_text((SCENARIOS / "call_rtp.xml").read_text().replace("PCAP", str(pcap)).replace("HOLD_MS", str(hold_ms)).replace("<!--DTMF-->\n", dtmf))
    return path
