"""Helpers, as in aioredlock: ``clean_password`` masks passwords for logs and reprs."""

from __future__ import annotations

import re
from typing import Any

__all__ = ("clean_password",)

_URL_PASSWORD = re.compile(r"(rediss?(?:\+sentinel|\+unix)?://[^:@/]*):[^@/]+@")


def clean_password(details: Any, cast: type = str) -> Any:
    """A copy of ``details`` (a connection dict, URL, or a list of them) with every
    password replaced by ``*******``; other values are returned as ``cast(details)`` for
    strings and unchanged otherwise."""
    if isinstance(details, dict):
        cleaned = dict(details)
        if "password" in cleaned:
            cleaned["password"] = "*******"
        return cleaned
    if isinstance(details, str):
        return cast(_URL_PASSWORD.sub(r"\1:*******@", details))
    if isinstance(details, list):
        return [clean_password(d, cast) for d in details]
    if isinstance(details, tuple):
        return tuple(clean_password(d, cast) for d in details)
    return details
