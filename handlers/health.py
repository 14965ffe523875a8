"""Liveness, readiness and health. None of them calls a paid API.

The LLM's server is asked whether it is there (``GET /models``, bounded to 1.5 s and its
answer kept for 10 s: bot/providers/llm_probe.py): a server that is down makes the report
degraded, and the LLM stage not ready when no member of its chain can answer.

With WORKERS > 1 (bot/shell/supervisor.py) each of these is answered by a ready worker (or the
supervisor's stand-in while none is), and readiness is the instance's: every worker
ready, the instance's call slots (MAX_CALLS, shared by the workers) not all taken, and
this worker not draining. ``/healthz`` and ``/readyz`` name the worker's pid.
``/healthz`` tells anyone only ``ok`` or ``degraded``; its detail is for the owner (detail_allowed)."""

from __future__ import annotations

import asyncio
import os
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from bot.provider_chain import ProviderChain
from bot.providers.llm_probe import ServerProbe
from handlers import login_limit
from handlers.api_gate import api_status, bearer_ok
from handlers.session_auth import COOKIE, session_valid
from handlers.startup import STARTUP
from handlers.state import DRAINING, EDGE, INSTANCE, PROMPTS, PROVIDERS, READY, SETTINGS
from handlers.storage import DELIVERY

try:
    VERSION = version("phonebot")
except PackageNotFoundError:  # running from a checkout without install
    VERSION = "0.0.0"


def _probes(llm: object) -> list[tuple[str, ServerProbe | None]]:
    """The LLM's members (one, or a chain's), each with its server probe if it has a server."""
    members = llm.members if isinstance(llm, ProviderChain) else [llm]
    return [(getattr(m, "name", "?"), p if isinstance(p := getattr(m, "probe", None), ServerProbe) else None) for m in members]


async def probe_llm(app: web.Application) -> None:
    """Ask each LLM server whether it is there (cached and bounded: bot/providers/llm_probe.py)."""
    probes = [p for _, p in _probes(app[PROVIDERS].llm) if p is not None]
    if probes:
        await asyncio.gather(*(p.check() for p in probes), return_exceptions=True)


def _llm_servers(llm: object, stage: dict[str, object], problems: list[str]) -> None:
    """The LLM servers' last probe into the report; the stage is not ready when no member
    can answer (every one's server is down)."""
    servers = {}
    answerable = 0
    for name, probe in _probes(llm):
        status = probe.status() if probe is not None else None
        if status is not None:
            servers[name] = status
            if not status["up"]:
                problems.append(f"llm: {name} server down ({status['detail']})")
                continue
        answerable += 1
    if servers:
        stage["servers"] = servers
    if not answerable and stage["ready"]:
        stage["ready"] = False


def health_report(app: web.Application) -> dict:
    settings, providers, ready = app[SETTINGS], app[PROVIDERS], app[READY]
    prompts = app[PROMPTS]
    stages: dict[str, dict[str, object]] = {
        stage: {"provider": p.name, "ready": bool(ready.get(stage))}
        for stage, p in (("stt", providers.stt), ("llm", providers.llm), ("tts", providers.tts))
    }
    server_problems: list[str] = []
    _llm_servers(providers.llm, stages["llm"], server_problems)
    problems = [f"{s} not ready" for s, v in stages.items() if not v["ready"]] + server_problems
    for stage, p in (("stt", providers.stt), ("llm", providers.llm), ("tts", providers.tts)):
        if isinstance(p, ProviderChain):  # each member's circuit
            chain = p.health()
            stages[stage]["chain"] = chain
            stages[stage]["last_used"] = p.last_used
            # an open (or still on trial) circuit degrades the service but does not fail it:
            # the chain's other members answer
            problems += [f"{stage}: {m['provider']} circuit {m['state']}" for m in chain if m["state"] != "closed"]
    if prompts.degraded:
        problems.append("fallback prompt unavailable")
    if settings.trial:
        problems.append("TRIAL MODE: no Twilio signature or API key checks; for this machine only")
    if not settings.twilio_validate:
        problems.append("twilio signature validation is OFF")
    delivery = _delivery(app, problems)
    edge = app.get(EDGE)
    return {
        "status": "degraded" if problems else "ok",
        "version": VERSION,
        "trial": settings.trial,
        "worker": {"pid": os.getpid(), "workers": settings.workers},
        "stages": stages,
        "prompts": prompts.status(),
        "signature_validation": settings.twilio_validate,
        "api": api_status(settings),
        "connections": edge.snapshot() if edge is not None else None,
        "delivery": delivery,
        "problems": problems,
    }


def _delivery(app: web.Application, problems: list[str]) -> dict | None:
    """The outbox as the store upkeep last read it (handlers/storage.py). A notification
    failing for longer than NOTIFY_ALERT_AFTER_S degrades the service: the owner is
    not being told."""
    view = app.get(DELIVERY)
    if view is None:
        return None
    d = view.summary
    after = app[SETTINGS].notify_alert_after_s
    if d.failing and d.failing_for_s > after:
        problems.append(f"notifications failing for {d.failing_for_s:.0f} s (over NOTIFY_ALERT_AFTER_S={after:g}): {d.failing} undelivered")
    return {
        "pending": d.pending, "failing": d.failing, "delivered": d.delivered,
        "oldest_undelivered_s": round(d.oldest_undelivered_s, 1), "failing_for_s": round(d.failing_for_s, 1),
        "checked_at": view.checked_at,
    }


def detail_allowed(request: web.Request) -> bool:
    """The full report (pids, worker count, connection phases, circuits) is for the owner:
    ``Authorization: Bearer API_KEY`` or the console's session, trial mode on this machine,
    or HEALTH_DETAIL=public. A wrong key is counted like any other (handlers/login_limit.py)."""
    settings = request.app[SETTINGS]
    if settings.health_detail == "public" or (settings.trial and not settings.api_key):
        return True
    header = request.headers.get("Authorization")
    if header is not None and settings.api_key:
        if bearer_ok(header, settings.api_key):
            return True
        if not login_limit.retry_after(request):
            login_limit.failed(request)
        return False
    return bool(settings.api_key) and COOKIE in request.cookies and session_valid(request)


async def healthz(request: web.Request) -> web.Response:
    """Public: ``{"status": "ok"|"degraded"}`` only; the detail needs the key (detail_allowed)."""
    if request.app[STARTUP].ready:
        await probe_llm(request.app)
    report = health_report(request.app)
    if not detail_allowed(request):
        return web.json_response({"status": report["status"]}, headers={"Cache-Control": "no-store"})
    return web.json_response(report, headers={"Cache-Control": "no-store"})


async def livez(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """For a load balancer: 503 while starting (saying what is loading), draining, at capacity, or a stage is down."""
    app = request.app
    startup = app[STARTUP]
    if not startup.ready:  # models and prompts still loading (or start-up failed)
        return web.json_response({"ready": False, "loading": startup.step, "problems": ["starting"]}, status=503)
    await probe_llm(app)
    report = health_report(app)
    problems = list(report["problems"])
    ok = all(s["ready"] for s in report["stages"].values())
    live, cap = app[INSTANCE].used(), app[SETTINGS].max_calls  # the instance's slots: what every carrier counts
    if app[DRAINING].on:
        ok = False
        problems.append("draining")
    if live >= cap:
        ok = False
        problems.append("at capacity")
    workers = app[SETTINGS].workers
    if workers > 1:  # one server: ready only when every worker of the instance is
        ready = len(app[INSTANCE].ready_workers())
        if ready < workers:
            ok = False
            problems.append(f"workers {ready}/{workers} ready")
    body = {"ready": ok, "live_calls": live, "max_calls": cap, "pid": os.getpid(), "problems": problems}
    return web.json_response(body, status=200 if ok else 503)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
