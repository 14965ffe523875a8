"""An httpx client whose ``send`` goes straight to the transport.

The SDKs build each request with httpx (base URL, auth headers, body) and hand it to
``AsyncClient.send``, which then runs an auth flow (none here: the SDKs put their keys
in headers), a redirect loop, a cookie jar (a urllib request object built and
parsed per response, though no vendor API sets cookies for us) and an ``elapsed``
timer around the body. For a turn of four requests that was a tenth of the CPU.
``LeanClient.send`` keeps what matters (closed-client check, timeout extension,
transport per URL, ``response.request``, reading the body unless streaming, one
redirect hop handed to httpx's own machinery if the client follows redirects) and
skips the rest. Anything unusual (an httpx ``auth``, event hooks) takes httpx's own path.

Building a request parses its URL up to three times in pure Python (the SDK's string,
the client's merge, the query parameters merged in). The same few endpoints and
parameter sets recur on every turn, and ``httpx.URL`` is immutable, so the merged URLs
are kept (at most ``URL_CACHE`` of them) and handed to httpx already made.
"""

from __future__ import annotations

from typing import Any

import httpx
from httpx._client import ClientState, UseClientDefault

USE_CLIENT_DEFAULT = httpx.USE_CLIENT_DEFAULT
URL_CACHE = 128


class LeanClient(httpx.AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._urls: dict[Any, httpx.URL] = {}

    def build_request(self, method: str, url: httpx.URL | str, *, params: Any = None, **kwargs: Any) -> httpx.Request:
        key = _url_key(url, params) if not self.params else None
        if key is None:
            return super().build_request(method, url, params=params, **kwargs)
        merged = self._urls.get(key)
        if merged is None:
            merged = super()._merge_url(url)
            if params is not None:
                merged = merged.copy_merge_params(params)
            if len(self._urls) >= URL_CACHE:
                self._urls.clear()
            self._urls[key] = merged
        return super().build_request(method, merged, **kwargs)

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        if isinstance(url, httpx.URL) and url.is_absolute_url:
            return url  # immutable: httpx would only copy it
        return super()._merge_url(url)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: httpx.Auth | UseClientDefault | None = USE_CLIENT_DEFAULT,  # type: ignore[override]
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        hooks = self.event_hooks
        if (auth is not None and not isinstance(auth, UseClientDefault)) or self.auth is not None or hooks["request"] or hooks["response"]:
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        if self._state == ClientState.CLOSED:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        self._state = ClientState.OPENED
        self._set_timeout(request)
        response = await self._transport_for_url(request.url).handle_async_request(request)
        response.request = request
        response.default_encoding = self._default_encoding
        follow = self.follow_redirects if isinstance(follow_redirects, UseClientDefault) else follow_redirects
        if follow and response.has_redirect_location:
            await response.aclose()
            return await super().send(request, stream=stream, auth=auth, follow_redirects=True)
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


def _url_key(url: httpx.URL | str, params: Any) -> Any:
    """A hashable key for (url, params) when both are plain strings and scalars."""
    if not isinstance(url, str):
        return None
    if params is None:
        return url
    items = params.items() if isinstance(params, dict) else params
    try:
        frozen = tuple((k, v) for k, v in items)
    except (TypeError, ValueError):
        return None
    if all(isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in frozen):
        return url, frozen
    return None
