"""Server options: where to listen, logs, the HTTP edge (issue 9) and the worker processes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config.values import Get, choice, fail, flag, networks, number, numbers, url

if TYPE_CHECKING:
    from bot.settings import Settings

MIN_API_KEY = 16  # characters


def read(get: Get, defaults: type[Settings]) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "host": get("HOST", defaults.host),
        "port": number("PORT", get("PORT", str(defaults.port)), int, 0, 65535),
        "public_url": url("PUBLIC_URL", get("PUBLIC_URL")),
        "data_dir": Path(get("DATA_DIR", str(defaults.data_dir))),
        "log_level": choice("LOG_LEVEL", get("LOG_LEVEL", "INFO"), ("debug", "info", "warning", "error")).upper(),
        "log_transcripts": flag("LOG_TRANSCRIPTS", get("LOG_TRANSCRIPTS")),
        "log_format": choice("LOG_FORMAT", get("LOG_FORMAT", "text"), ("text", "json")),
        "max_upload_bytes": number("MAX_UPLOAD_BYTES", get("MAX_UPLOAD_BYTES", str(defaults.max_upload_bytes)), int, 1024),
    }
    kw.update(_edge(get, defaults))
    if kw["trial"] and not get("HOST").strip():
        kw["host"] = "127.0.0.1"  # trial mode stays on this machine unless HOST says otherwise
    kw.update(_workers(get))
    kw["trusted_proxies"] = networks("TRUSTED_PROXIES", get("TRUSTED_PROXIES"))
    kw["health_detail"] = choice("HEALTH_DETAIL", get("HEALTH_DETAIL", "key"), ("key", "public"))
    return kw


def _edge(get: Get, defaults: type[Settings]) -> dict[str, Any]:
    """TRIAL, API_KEY and the connection limits."""
    kw: dict[str, Any] = {"trial": flag("TRIAL", get("TRIAL")), "api_key": get("API_KEY").strip()}
    if kw["api_key"] and len(kw["api_key"]) < MIN_API_KEY:
        fail(f"API_KEY: use at least {MIN_API_KEY} characters (it guards /v1, the console and the softphone), "
             "e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    kw.update(numbers(get, defaults, int, {"api_max_concurrent": ("API_MAX_CONCURRENT", 1, 64), "max_connections": ("MAX_CONNECTIONS", 16, 100000)}))
    kw.update(numbers(get, defaults, float, {
        "header_timeout_s": ("HEADER_TIMEOUT_S", 1.0, 300.0),
        "body_timeout_s": ("BODY_TIMEOUT_S", 1.0, 600.0),
        "keepalive_timeout_s": ("KEEPALIVE_TIMEOUT_S", 1.0, 3600.0),
    }))
    return kw


def _workers(get: Get) -> dict[str, Any]:
    """WORKERS (default: one per core this process may run on) and the metrics directory."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {
        "workers": number("WORKERS", get("WORKERS", str(max(1, cores))), int, 1, 256),
        "prometheus_multiproc_dir": get("PROMETHEUS_MULTIPROC_DIR").strip(),
    }
