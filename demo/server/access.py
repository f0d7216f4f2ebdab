"""Who may call /v1 and where it is: the API key check on every request, the rule that /v1 beyond loopback
needs a key, and this process's own base URL."""
from __future__ import annotations

import secrets

from fastapi import Header

from demo import limits
from demo.server.errors import ApiError

API_KEY_ENV = "SPECDEMO_API_KEY"


def api_key_check(api_key: str | None):
    """A FastAPI dependency: with `api_key`, every request must send it as a bearer token."""
    def check(authorization: str | None = Header(None)):
        if api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "invalid API key: send the server's key as 'Authorization: Bearer <key>' "
                                "(the openai client's api_key)", code="invalid_api_key")
    return check


def api_key_problem(host: str, share: bool, api_key: str | None) -> str | None:
    """Why the app must not start as asked, or None: /v1 beyond loopback needs a key."""
    if api_key or (limits.is_loopback(host) and not share):
        return None
    where = "with --share" if share else f"on {host}"
    return (f"serving /v1 {where} needs an API key: pass --api-key KEY or set {API_KEY_ENV} "
            f"(clients send it as the openai client's api_key)")


def own_base_url(host: str, port: int) -> str:
    """This process's /v1 as seen from itself."""
    h = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{'[' + h + ']' if ':' in h else h}:{port}/v1"
