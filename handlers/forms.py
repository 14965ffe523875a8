"""The form routes' one body parser: Twilio's callbacks and the console's forms.

Both clients send ``application/x-www-form-urlencoded`` in UTF-8 (Twilio always; a
browser for a plain ``<form method="post">``), so that is all a form route takes.
Anything else is answered 415 (another content type or charset) or 400 (bytes that are
not UTF-8, a broken escape, too many fields) with one log line, before any handler
work: a multipart body, truncated or not, never reaches a parser that could raise. The
body was already read, whole and bounded, by handlers/errors.py.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from bot.logs import kv

log = logging.getLogger("handlers.forms")

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 200  # Twilio's callbacks carry about 20
_CHARSETS = ("utf-8", "utf8")


def _refuse(request: web.Request, status: int, code: str, message: str) -> web.HTTPException:
    log.info("form refused", extra=kv(path=request.path, status=status, reason=code,
                                      content_type=request.content_type[:60]))
    body = json.dumps({"error": {"code": code, "message": message}})
    cls = web.HTTPUnsupportedMediaType if status == 415 else web.HTTPBadRequest
    return cls(text=body, content_type="application/json")


async def form_fields(request: web.Request) -> MultiDictProxy[str]:
    """The urlencoded form's fields (repeated names kept, in order); 415/400 otherwise.
    A request with no body is an empty form."""
    if not request.body_exists:
        return MultiDictProxy(MultiDict())
    if request.content_type != FORM_TYPE:
        raise _refuse(request, 415, "unsupported_media_type", f"send the form as {FORM_TYPE}")
    charset = (request.charset or "utf-8").lower()
    if charset not in _CHARSETS:
        raise _refuse(request, 415, "unsupported_charset", "send the form in UTF-8")
    raw = await request.read()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise _refuse(request, 400, "bad_form", "the form is not valid UTF-8") from None
    except ValueError:  # more than MAX_FIELDS fields
        raise _refuse(request, 400, "bad_form", f"a form has at most {MAX_FIELDS} fields") from None
    return MultiDictProxy(MultiDict(pairs))
