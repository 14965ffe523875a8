"""What the health report reads from a provider made of members (a failover chain,
bot/providers/failover.py), without knowing how the chain is built: the web layer
depends on this interface, not on the failover module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ProviderChain(Protocol):
    @property
    def members(self) -> Sequence[object]:
        """The providers in the order they are tried."""
        ...

    @property
    def last_used(self) -> str | None:
        """The member that answered last (None: none yet)."""
        ...

    def health(self) -> list[dict[str, Any]]:
        """Each member's circuit: ``{"provider": name, "state": "closed" | "open" | ..., ...}``."""
        ...
