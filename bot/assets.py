"""Files the program reads at run time: the web pages and templates, the bundled business files.

In a checkout they are the repository's ``web/`` and ``examples/business/``; an installed wheel
carries them inside the package as ``bot/_assets/`` (pyproject.toml's force-include), so the
program finds them from any working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _asset(installed: str, checkout: str) -> Path:
    packaged = _PACKAGE / "_assets" / installed
    return packaged if packaged.is_dir() else _CHECKOUT / checkout


WEB = _asset("web", "web")
BUSINESS = _asset("business", "examples/business")
DEFAULT_BUSINESS_FILE = BUSINESS / "property-office.toml"
