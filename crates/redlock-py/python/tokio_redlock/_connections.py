"""aioredlock's connection forms → the engine's server URLs."""

from __future__ import annotations

from typing import Any, List
from urllib.parse import parse_qsl, quote, urlencode

from .sentinel import Sentinel

# aioredis pool options that have no meaning here (one multiplexed connection per master).
_IGNORED = frozenset({"encoding", "timeout", "minsize", "maxsize", "create_connection_timeout"})
_KNOWN = frozenset({"host", "port", "db", "password", "ssl", "address"}) | _IGNORED


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _from_parts(host: str, port: int, db: Any = None, password: Any = None, tls: bool = False) -> str:
    scheme = "rediss" if tls else "redis"
    auth = f":{quote(str(password), safe='')}@" if password else ""
    path = f"/{int(db)}" if db not in (None, "") else ""
    return f"{scheme}://{auth}{_host(str(host))}:{int(port)}{path}"


def _without_ignored_options(conn: str) -> str:
    """``conn`` without the aioredis pool options in its query. The userinfo is left exactly
    as written: a password may hold ``/ ? # @`` unencoded (the engine's parser takes the
    userinfo up to the last ``@``), which a URL parser would read as a path or a query."""
    head, at, address = conn.rpartition("@")
    address, hash_, fragment = address.partition("#")  # kept for the engine to refuse
    location, question, query = address.partition("?")
    if not question:
        return conn
    kept = urlencode([(k, v) for k, v in parse_qsl(query) if k not in _IGNORED])
    return f"{head}{at}{location}" + (f"?{kept}" if kept else "") + hash_ + fragment


def to_url(conn: Any) -> str:
    """One element of ``redis_connections`` as an engine URL; ``TypeError`` for a form
    this package does not take (an aioredis pool: pass its address instead)."""
    if isinstance(conn, Sentinel):
        return conn.url()
    if isinstance(conn, dict):
        unknown = set(conn) - _KNOWN
        if unknown:
            raise TypeError(f"unexpected connection option(s): {', '.join(sorted(unknown))}")
        if "address" in conn:
            return to_url(conn["address"])
        return _from_parts(
            conn.get("host", "localhost"),
            conn.get("port", 6379),
            conn.get("db"),
            conn.get("password"),
            bool(conn.get("ssl")),
        )
    if isinstance(conn, (tuple, list)) and len(conn) == 2 and not isinstance(conn[0], (tuple, list, dict)):
        return _from_parts(conn[0], conn[1])
    if isinstance(conn, str):
        if conn.startswith(("redis://", "rediss://")):
            return _without_ignored_options(conn)
        if conn.startswith(("redis+sentinel://", "rediss+sentinel://", "redis+unix://", "unix://")):
            return conn
        if conn.startswith("/"):
            return f"redis+unix://{conn}"
        raise ValueError(f"not a Redis address: {conn!r} (write redis://host:port, rediss://…, or a socket path)")
    raise TypeError(
        f"unsupported connection {type(conn).__name__}: give a dict, a (host, port) tuple, a "
        "redis:// URL, a socket path or a Sentinel (for an aioredis pool, pass its address)"
    )


def to_urls(connections: Any) -> List[str]:
    """Every connection as an engine URL; ``ValueError`` for an empty list."""
    if isinstance(connections, (str, dict, Sentinel)) or (
        isinstance(connections, tuple) and len(connections) == 2 and not isinstance(connections[0], (tuple, list, dict))
    ):
        raise TypeError("redis_connections must be a list of connections")
    urls = [to_url(c) for c in connections]
    if not urls:
        raise ValueError("redis_connections is empty: give at least one Redis master")
    return urls
