"""`securenb agent start | stop`: the local signer for kernels when no Jupyter server runs.

See securenb.server.agent. The passphrase comes from a descriptor
(``--passphrase-fd``, e.g. a pipe from a secret manager) or a prompt; a
passphrase variable, if set, is read and then scrubbed from the agent.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from securenb.cli.output import console, workspace_from
from securenb.core.keys import read_passphrase
from securenb.errors import SecurenbError


@click.group()
def agent() -> None:
    """Hold the workspace's keys outside every kernel (as ssh-agent does)."""


@agent.command()
@click.option("--idle", "idle_s", type=click.FloatRange(min=1), default=900.0,
              show_default=True, help="Exit (lock) after this many seconds without a request.")
@click.option("--passphrase-fd", type=int, default=None,
              help="Read the passphrase (one line) from this file descriptor, e.g. 0 for a pipe.")
@click.option("--detach", is_flag=True, help="Run in the background once the keys are unlocked.")
@click.pass_context
def start(ctx: click.Context, idle_s: float, passphrase_fd: int | None, detach: bool) -> None:
    """Unlock the keys once and serve kernels, `%sign_model` and run records."""
    ws = workspace_from(ctx)
    if passphrase_fd is not None:
        with os.fdopen(passphrase_fd, "r", closefd=False) as fh:
            passphrase = fh.readline().rstrip("\n")
    else:
        passphrase = read_passphrase(ws.policy.signing.passphrase_env,
                                     purpose="the workspace keys")
    from securenb.signing.remote import agent_socket

    sock = agent_socket(ws.root)
    if sock.is_socket():
        raise SecurenbError(f"an agent already serves {ws.root} ({sock}); "
                            "`securenb agent stop` first")
    if detach and os.fork():
        deadline = time.monotonic() + 60
        while not sock.is_socket() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not sock.is_socket():
            raise SecurenbError("the agent did not start")
        console.print(f"securenb agent: serving {ws.root} on {sock}", markup=False)
        return
    if detach:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    import logging

    from securenb.server.agent import run

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    run(ws.root, passphrase, idle_s, logging.getLogger("securenb.agent"))


@agent.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the agent of this workspace (its keys are dropped)."""
    from securenb.signing.remote import agent_socket

    pid_file = agent_socket(workspace_from(ctx).root).with_suffix(".pid")
    try:
        pid = int(Path(pid_file).read_text())
    except (OSError, ValueError):
        console.print("no agent runs for this workspace")
        return
    os.kill(pid, signal.SIGTERM)
    console.print(f"securenb agent {pid}: stopped")
