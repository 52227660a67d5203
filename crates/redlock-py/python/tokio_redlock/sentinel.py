"""Redis Sentinel groups as quorum members, with aioredlock's ``Sentinel`` signature.

A ``Sentinel`` counts as one master of the quorum: the engine asks the sentinels which
server is the group's master, connects to it, and follows failovers.
"""

from __future__ import annotations

import re
import ssl
from typing import Any, List, Optional, Tuple, Union
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ("Sentinel", "SentinelConfigError")


class SentinelConfigError(Exception):
    """The Sentinel configuration is invalid (no master name, or an unknown form)."""


_URI = re.compile(r"^rediss?://.*\:\d+/\d?\??.*$")


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Sentinel:
    """A Sentinel group: ``Sentinel(connection, master=None, password=None, db=None,
    ssl_context=None)``.

    ``connection`` is a dict (``host`` required, ``port`` defaulting to 26379, and
    optionally ``master``, ``password``, ``db``), a ``redis://host:port/db?master=name``
    URI (``rediss://`` for TLS), a ``(host, port)`` tuple, or a list of such tuples.
    Keyword arguments win over values in ``connection``. ``password`` and ``db`` are the
    master's. Raises ``SentinelConfigError`` without a master name or for any other form.
    """

    def __init__(
        self,
        connection: Any,
        master: Optional[str] = None,
        password: Optional[str] = None,
        db: Optional[int] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        tls = ssl_context is not None
        hosts: List[Tuple[str, int]]
        if isinstance(connection, dict):
            if "host" not in connection:
                raise SentinelConfigError("Invalid Sentinel Configuration")
            hosts = [(str(connection["host"]), int(connection.get("port", 26379)))]
            master = master or connection.get("master")
            password = password if password is not None else connection.get("password")
            db = db if db is not None else connection.get("db")
        elif isinstance(connection, str) and _URI.match(connection):
            url = urlsplit(connection)
            query = parse_qs(url.query)
            tls = tls or url.scheme == "rediss"
            hosts = [(url.hostname or "localhost", url.port or 26379)]
            master = master or next(iter(query.get("master") or []), None)
            password = password if password is not None else url.password
            path = url.path.strip("/")
            if db is None and path:
                db = int(path)
        elif isinstance(connection, tuple) and len(connection) == 2 and not isinstance(connection[0], tuple):
            hosts = [(str(connection[0]), int(connection[1]))]
        elif isinstance(connection, list) and connection and all(
            isinstance(c, (tuple, list)) and len(c) == 2 for c in connection
        ):
            hosts = [(str(h), int(p)) for h, p in connection]
        else:
            raise SentinelConfigError("Invalid Sentinel Configuration")
        if not master:
            raise SentinelConfigError("Master name required for sentinel to be configured")
        self.connection = hosts
        self.master = master
        self.password = password
        self.db = db
        self.ssl_context = ssl_context
        self._hosts = hosts
        self._tls = tls

    def url(self) -> str:
        """The engine's URL for this group: ``redis+sentinel://[:pw@]h1:p1,h2:p2/master[/db]``."""
        scheme = "rediss+sentinel" if self._tls else "redis+sentinel"
        auth = f":{quote(str(self.password), safe='')}@" if self.password else ""
        hosts = ",".join(f"{_host(h)}:{p}" for h, p in self._hosts)
        db = f"/{int(self.db)}" if self.db is not None else ""
        return f"{scheme}://{auth}{hosts}/{quote(str(self.master), safe='')}{db}"

    def __repr__(self) -> str:
        return f"Sentinel(connection={self.connection!r}, master={self.master!r})"
