"""Entry point of the `securenb` command. Exit codes: docs/cli.md.

Commands load lazily (click's documented LazyGroup pattern): signing pulls in
sigstore and model-signing, data pulls in pandas; `securenb --help` or
`securenb artifacts` should not pay for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from securenb import __version__
from securenb.errors import SecurenbError

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


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when they are invoked."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, from SHORT_HELP where it has the command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)  # as click.Group does
        rows = []
        for name in names:
            if name in self.lazy and name in SHORT_HELP:
                stub = click.Command(name, help=SHORT_HELP[name])  # click's own shortening
                rows.append((name, stub.get_short_help_str(limit)))
            elif (command := self.get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run as if started in this folder.",
)
@click.version_option(__version__, prog_name="securenb")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None) -> None:
    """securenb: secure ML pipelines (store, attestations, audit, keys, signing, scans, data)."""
    ctx.obj = {"directory": directory}


def main() -> None:
    """Run the CLI; a SecurenbError becomes one line on stderr and its exit code."""
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
