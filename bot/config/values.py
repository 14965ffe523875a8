"""Reading one value: the parsers every area's reader shares, and how problems are gathered.

A parser takes the variable's name and its raw text and returns the value. A bad value
is a problem: while ``collect`` runs, each one is noted and the parser returns a stand-in,
so reading goes on and every problem is reported at once; outside ``collect`` it raises.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar, overload

T = TypeVar("T")

# get(VAR) -> its text, "" when unset; get(VAR, default) -> the default when unset
Get = Callable[..., str]


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and what is accepted
    (every bad variable, one per line, when there are several)."""


_found: ContextVar[list[str] | None] = ContextVar("settings_problems", default=None)


def collect(read: Callable[[Mapping[str, str]], T], env: Mapping[str, str]) -> tuple[T | None, list[str]]:
    """``read(env)``, and every problem noted while it ran (then no result)."""
    found: list[str] = []
    token = _found.set(found)
    try:
        result = read(env)
    finally:
        _found.reset(token)
    return (None, found) if found else (result, found)


@overload
def fail(message: str) -> None: ...
@overload
def fail(message: str, stand_in: T) -> T: ...
def fail(message: str, stand_in: Any = None) -> Any:
    found = _found.get()
    if found is None:
        raise SettingsError(message)
    found.append(message)
    return stand_in


def flag(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    return fail(f"{name}={raw!r}: expected true or false", False)


def number(name: str, raw: str, cast: type, lo: float | None = None, hi: float | None = None) -> Any:
    try:
        val = cast(raw)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        return fail(f"{name}={raw!r}: expected {kind}", cast(lo or 0))
    if (lo is not None and val < lo) or (hi is not None and val > hi):
        return fail(f"{name}={raw!r}: expected a value between {lo} and {hi}", cast(lo or 0))
    return val


def numbers(get: Get, defaults: object, cast: type, table: dict[str, tuple[str, float, float]]) -> dict[str, Any]:
    """Each field of ``table`` (field -> (VARIABLE, lowest, highest)), its default when unset."""
    return {name: number(var, get(var, str(getattr(defaults, name))), cast, lo, hi) for name, (var, lo, hi) in table.items()}


def choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    v = raw.strip().lower()
    if v not in choices:
        return fail(f"{name}={raw!r}: expected one of {', '.join(choices)}", choices[0])
    return v


def url(name: str, raw: str) -> str:
    v = raw.strip().rstrip("/")
    if v and not v.startswith(("http://", "https://", "ws://", "wss://")):
        return fail(f"{name}={raw!r}: expected an http(s):// URL", "")
    return v


def networks(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or CIDR networks, normalised ("10.0.0.1" ->
    "10.0.0.1/32")."""
    out: list[str] = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            hint = ""
            try:
                hint = f": did you mean {ipaddress.ip_network(item, strict=False)}?"
            except ValueError:
                pass
            return fail(f"{name}={raw!r}: {item!r} is not an IP address or CIDR network ({exc}){hint}", ())
    return tuple(out)


class Asked(Mapping[str, str]):
    """An environment that notes which names were looked up (the known settings)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        return self._env[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.names.add(key)
        return self._env.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)
