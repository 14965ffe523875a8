"""SIP messages: parsing with limits, and building the responses and requests the bot sends.

The header grammar is ``sipmessage``'s (BSD-2); this module adds what a public endpoint
needs on top: a size limit, the mandatory headers of RFC 3261 section 8.1.1 checked up
front, Content-Length honoured (and required on streams), and one error type, so no peer's
input becomes a traceback. Pure and synchronous (no I/O).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sipmessage import CSeq, Message, Request, Response, Via

MAX_MESSAGE = 16 * 1024  # an INVITE with SDP is 1-3 KB; a UDP datagram cannot carry 64 KB sanely
MAX_HEADERS = 80
MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
MAGIC = "z9hG4bK"  # RFC 3261 branch prefix
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REFER, NOTIFY, INFO, UPDATE"
USER_AGENT = "phonebot"

REASONS = {
    100: "Trying", 180: "Ringing", 200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 415: "Unsupported Media Type",
    420: "Bad Extension", 422: "Session Interval Too Small", 481: "Call/Transaction Does Not Exist", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable",
}


class SipError(ValueError):
    """A message the bot cannot use. ``answerable``: its headers are sound enough to send a
    400 back (otherwise it is dropped)."""

    def __init__(self, reason: str, *, answerable: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.answerable = reason, answerable


@dataclass(frozen=True)
class Peer:
    """Where a message came from and where its answer goes (symmetric, as RFC 3581 asks)."""

    proto: str  # "udp" | "tcp"
    host: str
    port: int


def parse(data: bytes) -> Request | Response:
    """One whole message (a datagram, or one framed off a stream) or ``SipError``."""
    head, body = _split(data)
    try:
        msg = Message.parse(head + b"\r\n\r\n")
    except Exception as exc:  # noqa: BLE001 - any parser failure is the peer's bad input
        raise SipError(f"unparsable: {type(exc).__name__}") from None
    cseq, length = _read_headers(msg)
    if length is not None:
        if length < 0 or length > len(body):
            raise SipError("Content-Length beyond the message", answerable=True)
        body = body[:length]
    msg.body = body
    _check_start_line(msg, cseq)
    return msg


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Headers and body, after the size and shape checks."""
    if len(data) > MAX_MESSAGE:
        raise SipError("too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipError("no end of headers")
    if head.count(b"\r\n") >= MAX_HEADERS:
        raise SipError("too many headers")
    if b"\x00" in head:
        raise SipError("NUL in headers")
    return head, body


def _read_headers(msg: Message) -> tuple[CSeq, int | None]:
    """The mandatory headers parsed now (so later reads cannot raise): CSeq and Content-Length."""
    for name in MANDATORY:
        if msg.headers.get(name) is None:
            raise SipError(f"no {name}")
    try:
        vias = msg.via
        cseq = msg.cseq
        msg.from_address  # noqa: B018 - parsed now, so later reads cannot raise
        msg.to_address  # noqa: B018
        length = msg.content_length
    except Exception as exc:  # noqa: BLE001 - any parser failure is the peer's bad input
        raise SipError(f"bad header: {type(exc).__name__}", answerable=_has_sound_via(msg)) from None
    if not vias:
        raise SipError("no Via")
    return cseq, length


def _check_start_line(msg: Request | Response, cseq: CSeq) -> None:
    if isinstance(msg, Request):
        if not re.fullmatch(r"[A-Z]{2,16}", msg.method):
            raise SipError("bad method", answerable=True)
        if cseq.method != msg.method and not (msg.method == "ACK" and cseq.method == "INVITE"):
            raise SipError("CSeq method differs from the request's", answerable=True)
        if not 0 <= cseq.sequence < 2**31:
            raise SipError("CSeq out of range", answerable=True)
    elif not 100 <= msg.code <= 699:
        raise SipError("bad status code")


def _has_sound_via(msg: Message) -> bool:
    try:
        return bool(msg.via) and msg.cseq is not None
    except Exception:  # noqa: BLE001
        return False


def frame_stream(buf: bytearray) -> bytes | None:
    """Take one message off a stream buffer (TCP): headers, then Content-Length bytes.
    None when incomplete; ``SipError`` when the stream cannot be resynchronised."""
    while buf[:2] == b"\r\n":  # keep-alive CRLFs (RFC 5626)
        del buf[:2]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_MESSAGE:
            raise SipError("headers too long")
        return None
    m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d{1,6})[ \t]*\r?$", bytes(buf[:end + 2]))
    if m is None:
        raise SipError("no Content-Length on a stream")
    total = end + 4 + int(m.group(1))
    if total > MAX_MESSAGE:
        raise SipError("too large")
    if len(buf) < total:
        return None
    data = bytes(buf[:total])
    del buf[:total]
    return data


def branch() -> str:
    return MAGIC + secrets.token_hex(10)


def tag() -> str:
    return secrets.token_hex(6)


def txn_key(msg: Request | Response) -> tuple[str, str]:
    """A transaction's key (RFC 3261 17.2.3): the top Via's branch and the method (ACK and
    CANCEL are matched to their INVITE by the caller)."""
    top = msg.via[0]
    b = top.parameters.get("branch") or ""
    method = msg.method if isinstance(msg, Request) else msg.cseq.method
    return (f"{b}|{top.host}:{top.port}", method)


def response(req: Request, code: int, *, peer: Peer | None = None, to_tag: str | None = None,
             headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (), body: bytes = b"",
             content_type: str = "application/sdp", reason: str | None = None) -> bytes:
    """A response to ``req`` (RFC 3261 8.2.6): its Vias (the top one stamped with
    ``received``/``rport`` from ``peer``), From, To (+ our tag), Call-ID and CSeq."""
    resp = Response(code, reason or REASONS.get(code, "Unknown"))
    vias = list(req.via)
    if peer is not None:
        top = vias[0]
        params = top.parameters
        changes: dict[str, str | None] = {}
        if top.host != peer.host:
            changes["received"] = peer.host
        if "rport" in params:
            changes["rport"] = str(peer.port)
            changes["received"] = peer.host
        if changes:
            vias[0] = Via(transport=top.transport, host=top.host, port=top.port, parameters=params.replace(**changes))
    resp.headers.setlist("Via", [str(v) for v in vias])
    resp.headers.set("From", req.headers["From"])
    to = req.headers["To"]
    if to_tag and ";tag=" not in to.lower().replace(" ", ""):
        to = f"{to};tag={to_tag}"
    resp.headers.set("To", to)
    resp.headers.set("Call-ID", req.headers["Call-ID"])
    resp.headers.set("CSeq", req.headers["CSeq"])
    for k, v in headers:
        resp.headers.add(k, v)
    resp.headers.set("Server", USER_AGENT)
    if body:
        resp.headers.set("Content-Type", content_type)
    resp.headers.set("Content-Length", str(len(body)))
    resp.body = body
    return bytes(resp)


def request(method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b"", content_type: str = "application/sdp") -> bytes:
    """A request from its parts (the caller puts Via first, then the dialog's headers)."""
    lines = [f"{method} {uri} SIP/2.0"] + [f"{k}: {v}" for k, v in headers]
    lines.append("Max-Forwards: 70")
    lines.append(f"User-Agent: {USER_AGENT}")
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def tag_of(header_value: str) -> str:
    m = re.search(r";\s*tag\s*=\s*([^;>\s,]+)", header_value, re.I)
    return m.group(1) if m else ""


def cseq_of(msg: Request | Response) -> CSeq:
    return msg.cseq


def call_sid(call_id: str, from_tag: str) -> str:
    """The call's id for the store and logs: never the peer's raw Call-ID (length, charset)."""
    return "SIP" + hashlib.sha256(f"{call_id}\n{from_tag}".encode()).hexdigest()[:31]
