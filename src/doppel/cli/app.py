"""The `doppel` command. Subcommands are registered explicitly, one module each."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import typer

from doppel import __version__
from doppel.cli import batch as batch_cmd
from doppel.cli import consent as consent_cmd
from doppel.cli import demo as demo_cmd
from doppel.cli import detect as detect_cmd
from doppel.cli import eval as eval_cmd
from doppel.cli import extract as extract_cmd
from doppel.cli import faceset as faceset_cmd
from doppel.cli import glitches as glitches_cmd
from doppel.cli import init as init_cmd
from doppel.cli import mask as mask_cmd
from doppel.cli import merge as merge_cmd
from doppel.cli import review as review_cmd
from doppel.cli import train as train_cmd
from doppel.cli import verify as verify_cmd
from doppel.core.errors import DoppelError

app = typer.Typer(
    name="doppel",
    help="doppel: an open face-replacement studio for film and video work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"doppel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", metavar="", help="Log what doppel is doing."),
    version: bool = typer.Option(False, "--version", metavar="", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")



def command(name: str, fn: Callable[..., None], group: typer.Typer | None = None, panel: str | None = None) -> None:
    """Register a subcommand (of ``group``, a sub-app, if given), turning doppel's errors into one
    line on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def run(*args: object, **kwargs: object) -> None:
        try:
            fn(*args, **kwargs)
        except DoppelError as exc:
            typer.echo(f"doppel: error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("doppel: interrupted", err=True)
            raise typer.Exit(130) from None

    (group or app).command(name, rich_help_panel=panel)(run)


# In the order of the work, one help panel per step.
SETUP, FACES, MODEL, CHECK, DEMO = "1. Set up", "2. Faces", "3. Train and merge", "4. Review and check", "Try it"
command("init", init_cmd.init, panel=SETUP)
app.add_typer(consent_cmd.app, name="consent", rich_help_panel=SETUP)
command("add", consent_cmd.add, consent_cmd.app)
command("list", consent_cmd.list_, consent_cmd.app)
command("extract", extract_cmd.extract, panel=FACES)
app.add_typer(faceset_cmd.app, name="faceset", rich_help_panel=FACES)
command("stats", faceset_cmd.stats, faceset_cmd.app)
command("prune", faceset_cmd.prune, faceset_cmd.app)
command("unprune", faceset_cmd.unprune, faceset_cmd.app)
command("train", train_cmd.train, panel=MODEL)
app.add_typer(mask_cmd.app, name="mask", rich_help_panel=MODEL)
command("train", mask_cmd.train, mask_cmd.app)
command("preview", mask_cmd.preview_, mask_cmd.app)
command("info", mask_cmd.info, mask_cmd.app)
command("merge", merge_cmd.merge, panel=MODEL)
app.add_typer(batch_cmd.app, name="batch", rich_help_panel=MODEL)
command("run", batch_cmd.run, batch_cmd.app)
command("status", batch_cmd.status, batch_cmd.app)
command("retry", batch_cmd.retry, batch_cmd.app)
command("glitches", glitches_cmd.glitches, panel=CHECK)
command("review", review_cmd.review, panel=CHECK)
command("eval", eval_cmd.eval_, panel=CHECK)
command("verify", verify_cmd.verify, panel=CHECK)
app.add_typer(detect_cmd.app, name="detect", rich_help_panel=CHECK)
command(detect_cmd.CHECK, detect_cmd.check, detect_cmd.app)
command("train", detect_cmd.train, detect_cmd.app)
command("demo", demo_cmd.demo, panel=DEMO)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
