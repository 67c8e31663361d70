"""What a new user reads: `doppel --help` in the order of the work, whole sentences, no placeholders on
flags, and reports that do not wrap when piped (issue 16, item 20)."""

from __future__ import annotations

import re
import subprocess
import sys

from typer.testing import CliRunner

from doppel.cli.app import app

COMMANDS = ["init", "consent", "extract", "faceset", "train", "merge", "batch", "glitches", "review", "eval",
            "verify", "demo"]


def _help(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_commands_are_listed_in_the_order_of_the_work() -> None:
    text = _help()
    found = [m.group(1) for m in re.finditer(r"^│ (\w+) ", text, re.M) if m.group(1) in COMMANDS]
    assert found == COMMANDS


def test_command_descriptions_are_whole_sentences_on_one_line() -> None:
    for line in _help().splitlines():
        m = re.match(r"^│ (\w+)\s{2,}(.+?)\s*│$", line)
        if m and m.group(1) in COMMANDS:
            assert m.group(2).endswith("."), line


def test_flags_show_no_type_placeholder() -> None:
    for command in ("train", "merge", "glitches", "review", "eval", "verify", "demo", "extract"):
        text = _help(command)
        flagged = [line for line in text.splitlines() if "<bool>" in line and "--help" not in line]
        assert flagged == [], (command, flagged)


def test_piped_reports_do_not_wrap_at_80_columns(tmp_path: object) -> None:
    long_name = "x" * 120 + ".mp4"
    done = subprocess.run([sys.executable, "-m", "doppel.cli.app", "verify", f"/nonexistent/{long_name}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert any(long_name in line for line in done.stderr.splitlines()), done.stderr
