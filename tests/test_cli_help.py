"""`securenb --help` is written without click, and is exactly what click writes.

The help page comes from securenb.cli.main's tables so that start-up imports
neither click nor any command (the < 0.3 s goal; `python -m benchmarks cli`).
It must stay byte for byte click's rendering, at every width click uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from securenb.cli.main import help_page

_FAST = ("import sys; sys.argv = ['securenb', {arg!r}]\n"
         "from securenb.cli.main import main\nmain()\n"
         "print(sorted(m for m in sys.modules if m == 'click' or m.startswith('click.') "
         "or m.startswith('securenb.cli.') and m != 'securenb.cli.main'))")


_CLICKS_PAGES = ("import json, click\nfrom securenb.cli.group import cli\n"
                 "print(json.dumps([click.Context(cli, info_name='securenb', terminal_width=w, "
                 "**cli.context_settings).get_help() for w in range(50, 121)]))")


@pytest.fixture(scope="module")
def clicks_pages() -> list[str]:
    """click's help page at widths 50..120, from a fresh process (other test modules of the
    session add commands to the group)."""
    out = subprocess.run([sys.executable, "-c", _CLICKS_PAGES], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return list(json.loads(out))


@pytest.mark.parametrize("width", range(50, 121))
def test_help_page_is_clicks_at_every_width(width: int, clicks_pages: list[str]) -> None:
    assert help_page(width) == clicks_pages[width - 50]


@pytest.mark.parametrize(("arg", "columns"), [("--help", "80"), ("-h", "63"), ("--help", "200")])
def test_help_imports_neither_click_nor_a_command(arg: str, columns: str) -> None:
    env = {**os.environ, "COLUMNS": columns}
    fast = subprocess.run([sys.executable, "-c", _FAST.format(arg=arg)], env=env,
                          capture_output=True, text=True, check=True, timeout=60).stdout
    *page, imported = fast.splitlines()
    assert imported == "[]"
    clicks = subprocess.run([sys.executable, "-c", "from securenb.cli.group import cli\n"
                             "cli.main([" + repr(arg) + "], prog_name='securenb')"], env=env,
                            capture_output=True, text=True, check=False, timeout=60)
    assert clicks.returncode == 0, clicks.stderr
    assert "\n".join(page) + "\n" == clicks.stdout


def test_installed_command_prints_the_same_help() -> None:
    script = Path(sys.executable).parent / "securenb"
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out == help_page(78) + "\n"
    assert out.startswith("Usage: securenb [OPTIONS] COMMAND [ARGS]...\n")


def test_other_arguments_still_go_to_click() -> None:
    """Only the bare help page is written by hand: errors and sub-command help are click's."""
    script = Path(sys.executable).parent / "securenb"
    out = subprocess.run([str(script), "--help", "sign"], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 0 and "Usage: securenb [OPTIONS] COMMAND" in out.stdout
    out = subprocess.run([str(script), "sign", "--help"], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 0 and "Usage: securenb sign [OPTIONS] PATH" in out.stdout
    out = subprocess.run([str(script), "no-such-command"], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 2 and "No such command" in out.stderr
