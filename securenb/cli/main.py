"""Entry point of the `securenb` command. Exit codes: docs/cli.md.

`securenb --help` must start fast (< 0.3 s on a loaded machine): it is written
from the tables below without importing click (most of the start-up cost), the
group (securenb.cli.group) or any command. Its text is click's own rendering,
reproduced for the one help page that needs no parsing (tests compare the two
byte for byte at several terminal widths); anything else goes to click.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    from securenb.cli.group import LazyGroup as LazyGroup
    from securenb.cli.group import cli as cli

HELP = "securenb: secure ML pipelines (store, attestations, audit, keys, signing, scans, data)."
OPTION_C_HELP = "Run as if started in this folder."

COMMANDS = {
    "init": "securenb.cli.workspace_cmd:init",
    "record": "securenb.cli.workspace_cmd:record",
    "artifacts": "securenb.cli.workspace_cmd:artifacts",
    "show": "securenb.cli.workspace_cmd:show",
    "attestations": "securenb.cli.workspace_cmd:attestations",
    "audit": "securenb.cli.audit_cmd:audit",
    "keys": "securenb.cli.keys_cmd:keys",
    "agent": "securenb.cli.agent_cmd:agent",
    "sign": "securenb.cli.sign_cmd:sign",
    "verify": "securenb.cli.sign_cmd:verify",
    "cosign": "securenb.cli.sign_cmd:cosign",
    "scan": "securenb.cli.scan_cmd:scan",
    "data": "securenb.cli.data_cmd:data",
    "kernels": "securenb.cli.kernels_cmd:kernels",
    "doctor": "securenb.cli.doctor_cmd:doctor",
    "bias": "securenb.cli.bias_cmd:bias",
    "gate": "securenb.cli.gate_cmd:gate",
    "vulns": "securenb.cli.vulns_cmd:vulns",
    "secrets": "securenb.cli.secrets_cmd:secrets",
    "robustness": "securenb.cli.robustness_cmd:robustness",
    "run": "securenb.cli.run_cmd:run",
    "reproduce": "securenb.cli.run_cmd:reproduce",
}


SHORT_HELP = {
    "init": "Create a .securenb/ workspace and its encrypted signing key.",
    "record": "Hash files and record them as artifacts (folders: every file inside).",
    "artifacts": "List recorded artifacts.",
    "show": "Show an artifact by digest (or prefix) or path, with its attestations.",
    "attestations": "List attestations (of one subject DIGEST, or all), checking their "
                    "signatures.",
    "audit": "The Merkle audit log: verify it offline, read it, prove entries are in it.",
    "keys": "Create, list, export and import signing keys (stored encrypted).",
    "agent": "Hold the workspace's keys outside every kernel (as ssh-agent does).",
    "sign": "Sign a model (file or folder) or a notebook (.ipynb) with a release key.",
    "verify": "Verify a model, a notebook, a cosign-signed file or an attestation "
              "(.intoto.json).",
    "cosign": "cosign `sign-blob --key` signatures: produce and verify them.",
    "scan": "Scan model files or folders for code that runs on load (exit 0 safe, 1 unsafe, "
            "2 unknown).",
    "data": "Encrypted datasets: Tink streaming AEAD at rest, envelope keys, manifests.",
    "kernels": 'Isolated kernels ("Python 3 (isolated, bwrap)") for JupyterLab and papermill -k.',
    "doctor": "Report sandboxes (bwrap, podman, docker, kubernetes), GPUs and workspace health.",
    "bias": "Bias check of a model's predictions (exit 0 within policy, 1 outside, 2 undefined).",
    "gate": "Gate verdict for a file or sha256:<hex> (exit 0 PASS, 1 FAIL, 2 INCOMPLETE).",
    "vulns": "Known vulnerabilities of Python packages (exit 0 none at threshold, 1 some, 2 "
             "error).",
    "secrets": "Secrets in notebooks (sources and outputs) and text files.",
    "robustness": "Adversarial robustness of a torch classifier, in the sandbox (exit 0/1/2).",
    "run": "Execute NOTEBOOK into OUTPUT with papermill, in a sandbox, audited, attested and "
           "signed.",
    "reproduce": "Re-run a signed run output with its recorded parameters, inputs and "
                 "environment.",
}
"""What `securenb --help` lists, so that it imports no command (tests check these match
each command's own help); a command missing here is imported to get its help."""


def __getattr__(name: str) -> Any:
    """``cli`` and ``LazyGroup`` (they import click): from securenb.cli.group, on first use."""
    if name in ("cli", "LazyGroup"):
        from securenb.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Run the CLI; a SecurenbError becomes one line on stderr and its exit code."""
    if sys.argv[1:] in (["--help"], ["-h"]) and os.path.basename(sys.argv[0]) == "securenb":
        sys.stdout.write(help_page(_width()) + "\n")
        return
    if sys.argv[1:2] == ["scan"] and (code := _scan_fast(sys.argv[2:])) is not None:
        raise SystemExit(code)
    import click

    from securenb.cli.group import cli
    from securenb.errors import SecurenbError

    try:
        cli.main(standalone_mode=False)
    except SecurenbError as exc:
        click.echo(f"error: {exc}", err=True)  # one unwrapped line: greppable in CI logs
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(2) from None


def _scan_fast(args: list[str]) -> int | None:
    """`securenb scan` without click, for its plain form (securenb.cli.scan_run): the exit
    code, or None (nothing done) for anything else (--help, an unknown option, no path, a
    --sarif folder, a malformed --allow), which click then parses and reports."""
    from pathlib import Path

    flags = {"--json": False, "--no-record": False}
    values: dict[str, list[str]] = {"--sarif": [], "--allow": []}
    paths: list[str] = []
    rest = iter(args)
    for arg in rest:
        name, eq, value = arg.partition("=")
        if arg == "--":
            paths += rest
        elif arg in flags:
            flags[arg] = True
        elif name in values:
            if not eq:
                value = next(rest, "")
            if not value or value.startswith("-"):
                return None
            values[name].append(value)
        elif arg.startswith("-"):
            return None
        else:
            paths.append(arg)
    sarif = values["--sarif"][-1] if values["--sarif"] else None
    if not paths or (sarif is not None and Path(sarif).is_dir()):
        return None
    from securenb.cli.scan_run import AllowListError, run_scan
    from securenb.errors import SecurenbError

    try:
        return run_scan(tuple(map(Path, paths)), Path(sarif) if sarif else None,
                        tuple(values["--allow"]), flags["--no-record"], flags["--json"], None)
    except AllowListError:
        return None  # click says which entry is malformed, as a usage error
    except SecurenbError as exc:  # as main() reports them through click
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        raise SystemExit(2) from None


def _width() -> int:
    """click's help width: the terminal's (or $COLUMNS), at most 80, less 2, at least 50."""
    import shutil

    return max(min(shutil.get_terminal_size().columns, 80) - 2, 50)


def help_page(width: int) -> str:
    """`securenb --help` as click writes it at ``width`` (click.HelpFormatter), without click."""
    import textwrap

    options = [("-C DIRECTORY", OPTION_C_HELP), ("--version", "Show the version and exit."),
               ("-h, --help", "Show this message and exit.")]
    names = sorted(COMMANDS)
    limit = width - 6 - max(map(len, names))  # as securenb.cli.group.LazyGroup does
    commands = [(name, _short_help(SHORT_HELP[name], limit)) for name in names]
    text = textwrap.fill(HELP, width, initial_indent="  ", subsequent_indent="  ",
                         replace_whitespace=False)
    return "\n".join(["Usage: securenb [OPTIONS] COMMAND [ARGS]...", "", text, "",
                      "Options:", *_definitions(options, width), "",
                      "Commands:", *_definitions(commands, width)])


def _definitions(rows: list[tuple[str, str]], width: int) -> list[str]:
    """click.HelpFormatter.write_dl, indented by 2, for one-paragraph texts."""
    import textwrap

    first_col = min(max(len(term) for term, _ in rows), 30) + 2
    lines = []
    for term, text in rows:
        wrapped = textwrap.wrap(text, max(width - first_col - 2, 10), replace_whitespace=False)
        if len(term) <= first_col - 2:
            lines.append(f"  {term}{' ' * (first_col - len(term))}{wrapped[0]}")
        else:
            lines += [f"  {term}", f"{' ' * (first_col + 2)}{wrapped[0]}"]
        lines += [f"{' ' * (first_col + 2)}{line}" for line in wrapped[1:]]
    return lines


def _short_help(text: str, limit: int) -> str:
    """click's short help of a command's help text: its first sentence, shortened to ``limit``."""
    import textwrap

    words = text.partition("\n\n")[0].split()
    for i, word in enumerate(words):
        if word.endswith(".") and (i == len(words) - 1 or not words[i + 1][0].islower()):
            words = words[: i + 1]
            break
    short = " ".join(words)
    if len(short) <= limit:
        return short
    return textwrap.shorten(short, limit, placeholder="...", break_on_hyphens=False)
