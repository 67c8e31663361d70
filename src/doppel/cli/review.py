"""`doppel review`: the local web app to step through a render's glitches and fix them."""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

import typer

from doppel.cli.common import console
from doppel.core.errors import ConfigError
from doppel.review.app import create_app, new_token


def review(
    workspace: Path = typer.Argument(..., help="The workspace whose renders to review."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a web browser."),
) -> None:
    """Serve the review app: timeline of glitch scores, frame views, overrides, re-render and export.

    Prints a URL carrying a random session token; requests without it are refused. Stop with Ctrl+C.
    """
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning[/]: listening on {host}: anyone who can reach it and has the URL can edit")
    if port == 0:  # any free port, chosen here so that the printed URL is right
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    token = new_token()
    app = create_app(workspace, token, host=host)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/?token={token}"
    typer.echo(f"doppel review: open {url}", err=True)  # one unwrapped line, easy to copy
    if not no_browser:
        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc})") from None
