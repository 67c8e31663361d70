"""`doppel review`: the local web app to step through a render's glitches and fix them."""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

import typer

from doppel.cli.common import console
from doppel.core.errors import ConfigError
from doppel.review.app import create_app
from doppel.review.guard import new_token


def review(
    workspace: Path = typer.Argument(..., help="The workspace whose renders to review."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", metavar="", help="Do not open a web browser."),
) -> None:
    """Serve the review app: timeline of glitch scores, frame views, overrides, re-render and export.

    Prints a URL carrying a random session token; requests without it are refused. Stop with Ctrl+C.
    """
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning[/]: listening on {host}: anyone who can reach it and has the URL can edit")
    # Take the port before printing the URL, so a busy port is one clear error, not a printed link to nothing.
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port") from None
    with sock:
        port = int(sock.getsockname()[1])
        token = new_token()
        app = create_app(workspace, token, host=host)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/?token={token}"
        typer.echo(f"doppel review: open {url}", err=True)  # one unwrapped line, easy to copy
        if not no_browser:
            threading.Timer(1.0, lambda: webbrowser.open(url)).start()
        uvicorn.run(app, fd=sock.fileno(), log_level="warning")
