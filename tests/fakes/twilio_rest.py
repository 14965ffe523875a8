"""A wire-level fake of Twilio's REST API for live call updates:
``POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`` (form-encoded, HTTP Basic auth).
Point the SDK at it with ``client.api.base_url``."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class RestBehaviour:
    mode: str = "ok"  # "ok", a status such as "500" / "404", or "hang"
    updates: list[dict] = field(default_factory=list)  # {"account", "call", "auth", "form"}


def twilio_rest_app(state: RestBehaviour) -> web.Application:
    async def update(request: web.Request) -> web.Response:
        form = dict(await request.post())
        auth = request.headers.get("Authorization", "")
        user = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        state.updates.append({"account": request.match_info["ac"], "call": request.match_info["ca"], "auth": user, "form": form})
        if state.mode == "hang":
            await asyncio.sleep(30)
        if state.mode.isdigit():
            status = int(state.mode)
            return web.json_response(
                {"code": 20404 if status == 404 else 20500, "message": "fake failure", "more_info": "", "status": status},
                status=status,
            )
        return web.json_response(
            {"sid": request.match_info["ca"], "account_sid": request.match_info["ac"], "status": form.get("Status", "in-progress")}
        )

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{ac}/Calls/{ca}.json", update)
    return app
