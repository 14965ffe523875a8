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
"""

from __future__ import annotations

import httpx
from httpx._client import ClientState, UseClientDefault

USE_CLIENT_DEFAULT = httpx.USE_CLIENT_DEFAULT


class LeanClient(httpx.AsyncClient):
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
