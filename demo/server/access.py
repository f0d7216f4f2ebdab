"""Who may use the app and its /v1 routes: the rules that a public app needs a login and /v1 beyond loopback an
API key (checked once, at start, by app.py and python -m demo.serve alike: check_launch), the key check on
every request, and this process's own base URL."""
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


def auth_problem(host: str, share: bool, auth: str | None) -> str | None:
    """Why the app must not start as asked, or None: a public app needs --auth."""
    if auth or not limits.for_launch(host, share).public:
        return None
    where = "with --share" if share else f"on {host}"
    return (f"serving the app {where} needs a login: pass --auth USER:PASSWORD, or --auth generate for a "
            f"generated password")


def parse_auth(value: str) -> tuple[str, str]:
    """--auth USER:PASSWORD, or "generate": user "demo" with a random password (printed by the app)."""
    if value == "generate":
        return "demo", secrets.token_urlsafe(12)
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth takes USER:PASSWORD (both non-empty) or the word generate")
    return user, password


def check_launch(host: str, share: bool, api_key: str | None, auth: str | None = None,
                 ui: bool = True) -> tuple[str, str] | None:
    """The one check before serving: the page's login (ui: app.py) and /v1's key. Returns the login as
    (user, password) or None; raises ValueError with the message to print."""
    problem = (auth_problem(host, share, auth) if ui else None) or api_key_problem(host, share, api_key)
    if problem:
        raise ValueError(problem)
    return parse_auth(auth) if ui and auth else None


def own_base_url(host: str, port: int) -> str:
    """This process's /v1 as seen from itself."""
    h = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{'[' + h + ']' if ':' in h else h}:{port}/v1"
