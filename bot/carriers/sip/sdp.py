"""SDP (RFC 4566) parsing and the offer/answer model (RFC 3264) for one G.711 audio stream.

The bot speaks 8 kHz G.711 only (PCMU, or PCMA converted at the edge) plus RFC 4733
telephone-events. ``answer_offer`` picks the first of PCMU/PCMA in the offerer's order,
keeps every m-line of the offer (RFC 3264 5.1: the answer has as many), rejects what it
cannot take with port 0, and turns the offer's direction (``a=sendonly``/``recvonly``/
``inactive``, or the old RFC 2543 hold ``c=0.0.0.0``) into ours. Anything malformed raises
``SdpError`` (the caller answers 488), never another exception.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

MAX_SDP = 16_384  # an INVITE's SDP is a few hundred bytes; a long one is garbage or an attack
MAX_MEDIA = 16
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 13: ("CN", 8000), 9: ("G722", 8000), 18: ("G729", 8000), 3: ("GSM", 8000)}
OUR_CODECS = ("PCMU", "PCMA")
RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")  # plain RTP; SRTP (RTP/SAVP...) is refused with port 0
FLIP = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class SdpError(ValueError):
    """The SDP is malformed or offers nothing the bot can take (SIP: 488 Not Acceptable Here)."""


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    encoding: str  # upper case: "PCMU", "TELEPHONE-EVENT"
    clock_rate: int
    channels: int = 1


@dataclass(frozen=True)
class MediaDescription:
    media: str  # "audio", "video", ...
    port: int
    proto: str  # "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", ...
    formats: tuple[str, ...]  # as in the m-line: payload type numbers for RTP
    connection: str | None = None  # the media-level c= address, if any
    rtpmaps: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None  # only when the m-section says so
    ptime: int | None = None
    rtcp_port: int | None = None  # a=rtcp (RFC 3605)

    def codec(self, pt: int) -> RtpMap | None:
        """What payload type ``pt`` means here: its rtpmap, else the static RFC 3551 table."""
        if pt in self.rtpmaps:
            return self.rtpmaps[pt]
        if pt in STATIC:
            name, rate = STATIC[pt]
            return RtpMap(pt, name, rate)
        return None


@dataclass(frozen=True)
class SessionDescription:
    origin: tuple[str, str, str, str] = ("-", "0", "0", "0.0.0.0")  # username, sess-id, sess-version, address
    session_name: str = "-"
    connection: str | None = None  # the session-level c= address
    direction: str | None = None  # the session-level direction attribute
    media: tuple[MediaDescription, ...] = ()


@dataclass(frozen=True)
class MediaParams:
    """What the RTP side needs to run the negotiated stream."""

    remote_addr: tuple[str, int]  # where to send RTP ("0.0.0.0" on an old-style hold)
    payload_type: int
    codec: str  # "PCMU" | "PCMA"
    dtmf_payload_type: int | None
    ptime_ms: int  # what the far end asked for; the bot sends 20 ms packets
    direction: str  # OUR side: "sendrecv" | "sendonly" | "recvonly" | "inactive"
    rtcp_port: int | None = None  # the far end's RTCP port when a=rtcp says so (else RTP port + 1)

    @property
    def sending(self) -> bool:
        return self.direction in ("sendrecv", "sendonly") and self.remote_addr[0] not in ("0.0.0.0", "::")

    @property
    def receiving(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


def _digits(text: str, most: int = 19) -> bool:
    """ASCII digits only (``str.isdigit`` also takes "²", which ``int`` refuses)."""
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def _int(text: str, what: str, lo: int = 0, hi: int = 2**63) -> int:
    if not _digits(text):  # also rules out signs and blanks
        raise SdpError(f"bad {what}: {text[:20]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise SdpError(f"{what} out of range: {value}")
    return value


def _address(value: str) -> str:
    """The address of a c= line (``IN IP4 192.0.2.1``, ``IN IP6 ::1``; a multicast TTL suffix dropped)."""
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line: {value[:60]!r}")
    addr = parts[2].split("/", 1)[0]
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        # a host name is legal in SDP but asks for DNS on the media path: refuse it
        raise SdpError(f"c= address is not an IP address: {addr[:60]!r}") from None
    if (ip.version == 4) != (parts[1] == "IP4"):
        raise SdpError(f"c= address family mismatch: {value[:60]!r}")
    if ip.is_multicast or str(ip) == "255.255.255.255":
        # the bot would send 50 packets a second to a group or a whole network: not a phone call
        raise SdpError(f"c= address is multicast or broadcast: {addr[:60]!r}")
    return str(ip)


class _Media:
    """An m-section while it is being read."""

    def __init__(self, line: str) -> None:
        parts = line.split()
        if len(parts) < 3:
            raise SdpError(f"bad m= line: {line[:80]!r}")
        self.media = parts[0].lower()
        self.port = _int(parts[1].split("/", 1)[0], "m= port", 0, 65535)
        self.proto = parts[2]
        self.formats = tuple(parts[3:])
        self.connection: str | None = None
        self.rtpmaps: dict[int, RtpMap] = {}
        self.fmtp: dict[int, str] = {}
        self.direction: str | None = None
        self.ptime: int | None = None
        self.rtcp_port: int | None = None

    def attribute(self, name: str, value: str | None) -> None:
        if name in DIRECTIONS:
            self.direction = name
        elif name == "rtpmap" and value is not None:
            pt_text, _, enc = value.partition(" ")
            pieces = enc.strip().split("/")
            if len(pieces) < 2:
                raise SdpError(f"bad rtpmap: {value[:60]!r}")
            pt = _int(pt_text, "rtpmap payload type", 0, 127)
            channels = _int(pieces[2], "rtpmap channels", 1, 8) if len(pieces) > 2 and pieces[2] else 1
            self.rtpmaps[pt] = RtpMap(pt, pieces[0].upper(), _int(pieces[1], "rtpmap clock rate", 1, 1_000_000), channels)
        elif name == "fmtp" and value is not None:
            pt_text, _, params = value.partition(" ")
            if _digits(pt_text, 3):
                self.fmtp[int(pt_text)] = params.strip()
        elif name == "ptime" and value is not None:
            # "20" or "20.0"; anything else is ignored, not fatal
            whole = value.strip().split(".", 1)[0]
            if _digits(whole, 4) and 0 < int(whole) <= 1000:
                self.ptime = int(whole)
        elif name == "rtcp" and value is not None:
            self.rtcp_port = _int(value.split()[0], "a=rtcp port", 1, 65535) if value.split() else None

    def freeze(self) -> MediaDescription:
        return MediaDescription(
            self.media, self.port, self.proto, self.formats, self.connection, self.rtpmaps, self.fmtp, self.direction, self.ptime, self.rtcp_port
        )


def parse_sdp(text: str) -> SessionDescription:
    """Read an SDP body; raises ``SdpError`` on anything malformed."""
    if not isinstance(text, str):
        raise SdpError("SDP must be text")
    if len(text) > MAX_SDP:
        raise SdpError(f"SDP too long ({len(text)} characters)")
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    reader = _Reader()
    for line in lines[1:]:
        reader.line(line)
    return reader.done()


class _Reader:
    """The session and media sections of one SDP body, a line at a time."""

    def __init__(self) -> None:
        self.origin: tuple[str, str, str, str] | None = None
        self.name = "-"
        self.connection: str | None = None
        self.direction: str | None = None
        self.media: list[_Media] = []

    def line(self, line: str) -> None:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"bad SDP line: {line[:80]!r}")
        kind, value = line[0], line[2:]
        media = self.media
        if kind == "m":
            if len(media) >= MAX_MEDIA:
                raise SdpError("too many m= lines")
            media.append(_Media(value))
        elif kind == "c":
            addr = _address(value)
            if media:
                media[-1].connection = addr
            else:
                self.connection = addr
        elif kind == "o" and not media:
            parts = value.split()
            if len(parts) != 6:
                raise SdpError(f"bad o= line: {value[:80]!r}")
            self.origin = (parts[0], parts[1], parts[2], parts[5])
        elif kind == "s" and not media:
            self.name = value
        elif kind == "a":
            self.attribute(value)

    def attribute(self, value: str) -> None:
        attr, sep, attr_value = value.partition(":")
        if self.media:
            self.media[-1].attribute(attr.strip().lower(), attr_value if sep else None)
        elif attr in DIRECTIONS:
            self.direction = attr

    def done(self) -> SessionDescription:
        if self.origin is None:
            raise SdpError("SDP has no o= line")
        done = tuple(m.freeze() for m in self.media)
        for m in done:
            if m.port and m.connection is None and self.connection is None:
                raise SdpError(f"no c= line for the {m.media} stream")
        return SessionDescription(self.origin, self.name, self.connection, self.direction, done)


def _usable(m: MediaDescription) -> tuple[RtpMap, RtpMap | None] | None:
    """The codec (first PCMU/PCMA in the offer's order) and telephone-event of an audio m-section."""
    if m.media != "audio" or m.port == 0 or m.proto.upper() not in RTP_PROTOS:
        return None
    chosen: RtpMap | None = None
    dtmf: RtpMap | None = None
    for fmt in m.formats:
        if not _digits(fmt, 3) or int(fmt) > 127:
            continue
        c = m.codec(int(fmt))
        if c is None or c.clock_rate != 8000 or c.channels != 1:
            continue
        if chosen is None and c.encoding in OUR_CODECS:
            chosen = c
        elif dtmf is None and c.encoding == "TELEPHONE-EVENT":
            dtmf = c
    return (chosen, dtmf) if chosen else None


def media_params(sdp: SessionDescription, m: MediaDescription, codec: RtpMap, dtmf: RtpMap | None) -> MediaParams:
    """Our side of the stream ``m`` described by the far end's SDP (an offer or an answer)."""
    host = m.connection or sdp.connection or "0.0.0.0"
    theirs = m.direction or sdp.direction or "sendrecv"
    ours = FLIP[theirs]
    if host in ("0.0.0.0", "::"):
        # RFC 2543 hold: the far end wants nothing sent to it; it may still send (music on hold)
        ours = "recvonly" if theirs in ("sendrecv", "sendonly") else "inactive"
    return MediaParams(
        (host, m.port), codec.payload_type, codec.encoding, dtmf.payload_type if dtmf else None, m.ptime or 20, ours, m.rtcp_port
    )


def _origin(local_ip: str, session_id: int | None, session_version: int) -> str:
    family = "IP6" if ":" in local_ip else "IP4"
    sid = session_id if session_id is not None else secrets.randbelow(2**31)
    return f"o=phonebot {sid} {session_version} IN {family} {local_ip}"


def _audio_lines(port: int, proto: str, codec: RtpMap, dtmf: RtpMap | None, direction: str) -> list[str]:
    pts = [str(codec.payload_type)] + ([str(dtmf.payload_type)] if dtmf else [])
    lines = [f"m=audio {port} {proto} {' '.join(pts)}", f"a=rtpmap:{codec.payload_type} {codec.encoding}/8000"]
    if dtmf:
        lines += [f"a=rtpmap:{dtmf.payload_type} telephone-event/8000", f"a=fmtp:{dtmf.payload_type} 0-16"]
    return lines + ["a=ptime:20", f"a={direction}"]


def answer_offer(
    offer: SessionDescription, *, local_ip: str, local_port: int, session_id: int | None = None, session_version: int = 1
) -> tuple[str, MediaParams]:
    """The answer SDP and what was agreed, or ``SdpError`` when no audio stream has PCMU/PCMA.

    On a re-INVITE pass the same ``session_id`` as the first answer and a ``session_version``
    one higher (RFC 3264 8): some PBXes ignore an answer whose origin did not change.
    """
    family = "IP6" if ":" in local_ip else "IP4"
    lines = ["v=0", _origin(local_ip, session_id, session_version), "s=phonebot", f"c=IN {family} {local_ip}", "t=0 0"]
    params: MediaParams | None = None
    for m in offer.media:
        picked = _usable(m) if params is None else None
        if picked is None:
            lines.append(f"m={m.media} 0 {m.proto} {m.formats[0] if m.formats else '0'}")
            continue
        codec, dtmf = picked
        params = media_params(offer, m, codec, dtmf)
        lines += _audio_lines(local_port, m.proto, codec, dtmf, params.direction)
    if params is None:
        raise SdpError("no audio stream offers PCMU or PCMA over RTP/AVP")
    return "\r\n".join(lines) + "\r\n", params


def make_offer(
    *,
    local_ip: str,
    local_port: int,
    codecs: tuple[str, ...] = OUR_CODECS,
    dtmf_payload_type: int = 101,
    direction: str = "sendrecv",
    session_id: int | None = None,
    session_version: int = 1,
) -> str:
    """An offer for an outbound call (or a re-INVITE: hold is ``direction="sendonly"``)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    family = "IP6" if ":" in local_ip else "IP4"
    static = {"PCMU": 0, "PCMA": 8}
    pts = [static[c] for c in codecs]
    lines = ["v=0", _origin(local_ip, session_id, session_version), "s=phonebot", f"c=IN {family} {local_ip}", "t=0 0"]
    lines.append(f"m=audio {local_port} RTP/AVP {' '.join(str(p) for p in pts)} {dtmf_payload_type}")
    lines += [f"a=rtpmap:{static[c]} {c}/8000" for c in codecs]
    lines += [f"a=rtpmap:{dtmf_payload_type} telephone-event/8000", f"a=fmtp:{dtmf_payload_type} 0-16", "a=ptime:20", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"


def accept_answer(answer: SessionDescription) -> MediaParams:
    """What the far end's answer to our ``make_offer`` agreed (its first usable audio stream)."""
    for m in answer.media:
        picked = _usable(m)
        if picked:
            return media_params(answer, m, *picked)
    raise SdpError("the answer accepts no PCMU/PCMA audio stream")
