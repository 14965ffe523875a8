"""Who may talk to the SIP carrier: the allow-list, a per-source rate limit, digest auth.

Checked before a request reaches a dialog (so before the engine): a source outside
``SIP_ALLOW`` gets 403 while it stays under its rate and silence past it; with
``SIP_USERNAME``/``SIP_PASSWORD`` an INVITE must carry digest credentials (RFC 2617/8760
MD5, qop=auth). Nonces are stateless (a timestamp and an HMAC keyed by the password), so
any instance behind a dispatcher accepts the nonce another one issued.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from sipmessage import Request

NONCE_TTL_S = 300
MAX_SOURCES = 4096  # rate-limit buckets kept (least recently seen dropped first)


class Allow:
    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self.nets = [ipaddress.ip_network(c) for c in cidrs]
        self._seen: dict[str, bool] = {}  # every datagram asks: the answer per address, bounded

    def __call__(self, host: str) -> bool:
        if not self.nets:
            return True
        known = self._seen.get(host)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(host)
            ok = any(ip in n for n in self.nets)
        except ValueError:
            ok = False
        if len(self._seen) >= MAX_SOURCES:
            self._seen.clear()
        self._seen[host] = ok
        return ok


class RateLimit:
    """A token bucket per source address: ``rate`` messages a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.dropped = 0

    def take(self, host: str) -> bool:
        now = self.clock()
        credit, last = self.buckets.pop(host, (self.burst, now))
        credit = min(self.burst, credit + (now - last) * self.rate)
        ok = credit >= 1
        self.buckets[host] = (credit - 1 if ok else credit, now)
        if len(self.buckets) > MAX_SOURCES:
            self.buckets.popitem(last=False)
        if not ok:
            self.dropped += 1
        return ok


class Digest:
    """Digest authentication of inbound requests (UAS side)."""

    def __init__(self, username: str, password: str, realm: str = "phonebot", clock: Callable[[], float] = time.time) -> None:
        self.username, self.password, self.realm, self.clock = username, password, realm, clock
        self._key = hashlib.sha256(b"sip-nonce\n" + password.encode()).digest()

    def _nonce(self, ts: int) -> str:
        mac = hmac.new(self._key, str(ts).encode(), hashlib.sha256).hexdigest()[:24]
        return f"{ts:x}.{mac}"

    def challenge(self, stale: bool = False) -> str:
        nonce = self._nonce(int(self.clock()))
        extra = ", stale=true" if stale else ""
        return f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"{extra}'

    def check(self, req: Request) -> str:
        """"ok", "missing", "stale" (a good answer to an expired nonce) or "bad"."""
        try:
            cred = req.authorization
        except Exception:  # noqa: BLE001 - unparsable credentials are wrong credentials
            return "bad"
        if cred is None or cred.parameters is None or cred.scheme.lower() != "digest":
            return "missing"
        p = cred.parameters
        nonce, resp = p.get("nonce", ""), p.get("response", "")
        if p.get("username") != self.username or p.get("realm") != self.realm or not nonce or not resp:
            return "bad"
        if (p.get("algorithm") or "MD5").upper() != "MD5":
            return "bad"
        ts_hex, _, _ = nonce.partition(".")
        try:
            ts = int(ts_hex, 16)
        except ValueError:
            return "bad"
        if not hmac.compare_digest(self._nonce(ts), nonce):
            return "bad"
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{req.method}:{p.get('uri', '')}")
        qop = p.get("qop")
        if qop:
            if qop != "auth":
                return "bad"
            want = _md5(f"{ha1}:{nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:{qop}:{ha2}")
        else:
            want = _md5(f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(want, resp.lower()):
            return "bad"
        return "stale" if self.clock() - ts > NONCE_TTL_S else "ok"


def answer_challenge(challenge: str, *, method: str, uri: str, username: str, password: str) -> str:
    """The Authorization value for a 401/407 challenge (UAC side: REGISTER, the simulator)."""
    params = dict(_params(challenge.split(" ", 1)[1] if " " in challenge else ""))
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    out = f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        cnonce, nc = secrets.token_hex(8), "00000001"
        resp = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        out += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = _md5(f"{ha1}:{nonce}:{ha2}")
    out += f', response="{resp}"'
    if params.get("opaque"):
        out += f', opaque="{params["opaque"]}"'
    return out


def _params(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip(" ,").lower()
        if text[eq + 1:eq + 2] == '"':
            end = text.find('"', eq + 2)
            end = len(text) if end < 0 else end
            out.append((key, text[eq + 2:end]))
            i = end + 1
        else:
            end = text.find(",", eq + 1)
            end = len(text) if end < 0 else end
            out.append((key, text[eq + 1:end].strip()))
            i = end
        i += 1 if i < len(text) and text[i] == "," else 0
    return out


def _md5(s: str) -> str:
    return hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()
