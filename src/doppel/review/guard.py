"""The review app's guard: who may talk to it (the session token), by which name (the ``Host`` header,
against DNS rebinding) and how much (a request-size limit).

Every request must carry the token (``X-Doppel-Token`` header, ``token`` query parameter, or the
cookie set when the tokenised URL is opened); requests that change anything must carry it in the
header, so a cookie alone (say, sent by another site) changes nothing. The cookie's name carries the
port, so two review servers on one machine (cookies ignore ports) never overwrite each other's.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

COOKIE = "doppel_review"
HEADER = "x-doppel-token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")
MAX_BODY = 1 << 20  # bytes: the largest edit (32 polygons of 256 points) is well under 100 KB
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                "script-src 'self'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_name(port: int | None) -> str:
    return f"{COOKIE}_{port}" if port else COOKIE


def _host_of(header: str) -> str:
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(header: str, bound: str) -> bool:
    """Whether a request's ``Host`` names this server. Bound to one address: that address or a local
    name. Bound to every interface: any IP literal or this machine's own names, never a domain an
    attacker controls (which is how DNS rebinding reaches a local server)."""
    host = _host_of(header)
    if not host:
        return False
    if host in LOCAL_HOSTS or host == bound.lower():
        return True
    if bound in ALL_INTERFACES:
        return _is_ip(host) or host in {socket.gethostname().lower(), socket.getfqdn().lower()}
    return False


def install(app: FastAPI, token: str, bound: str) -> None:
    """Add the guard to ``app`` (a middleware run before every route)."""

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not host_allowed(request.headers.get("host", ""), bound):
            return JSONResponse({"error": "refused: unexpected Host header"}, status_code=403)
        length = request.headers.get("content-length")
        if request.method not in ("GET", "HEAD"):
            if length is None and request.headers.get("transfer-encoding"):
                return JSONResponse({"error": "refused: send a Content-Length"}, status_code=411)
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                return JSONResponse({"error": f"refused: requests are limited to {MAX_BODY} bytes"},
                                    status_code=413)
        cookie_key = cookie_name(request.url.port)
        header = request.headers.get(HEADER, "")
        query = request.query_params.get("token", "")
        cookie = request.cookies.get(cookie_key, "")
        supplied = next((t for t in (header, query, cookie) if t), "")
        if not supplied or not secrets.compare_digest(supplied.encode(), token.encode()):
            return JSONResponse({"error": "refused: open the URL with the session token that "
                                          "`doppel review` printed"}, status_code=401)
        if request.method not in ("GET", "HEAD") and not secrets.compare_digest(header.encode(), token.encode()):
            return JSONResponse({"error": f"refused: changes need the {HEADER} header"}, status_code=403)
        response = await call_next(request)
        if query and cookie != token:  # a valid tokenised URL replaces a stale cookie (after a restart)
            response.set_cookie(cookie_key, token, httponly=True, samesite="strict")
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")
        return response
