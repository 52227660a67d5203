"""Helpers, as in aioredlock: ``clean_password`` masks passwords for logs and reprs."""

from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ("clean_password",)

# aioredlock's pattern: every redis:// or rediss:// URL is shown with a masked password.
REDIS_DSN_PATTERN = r"(rediss?:\/\/)(:.+@)?(.*)"


def clean_password(details: Any, cast: Callable[[Any], Any] = str) -> Any:
    """``details`` (a connection dict, a URL, or a list of them) with every password
    replaced by ``*******``, passed through ``cast`` (``str`` by default), exactly as
    aioredlock's ``utility.clean_password``."""
    if isinstance(details, dict):
        details = {**details}
        if "password" in details:
            details["password"] = "*******"
    elif isinstance(details, list):
        details = [clean_password(x, cast=type(x)) for x in details]
    elif isinstance(details, str) and re.match(REDIS_DSN_PATTERN, details):
        details = _mask_url(details)
    return cast(details)


def _mask_url(url: str) -> str:
    """aioredlock's masking (``re.sub(REDIS_DSN_PATTERN, ...)``: ``redis://:*******@host``,
    also where the URL has no password), except that a ``user:password@`` userinfo keeps
    only the user: aioredlock's pattern misses it and shows the password after the mask. The
    userinfo runs to the last ``@``, as the engine reads it."""
    scheme, _, rest = url.partition("://")
    userinfo, at, address = rest.rpartition("@")
    user = userinfo.partition(":")[0] if at and ":" in userinfo else ""
    return f"{scheme}://{user}:*******@{address if at else rest}"
