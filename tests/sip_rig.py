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
    """Run sipp to ``target`` (host:port) with ``args``; its exit code 0 = every call succeeded."""
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
