"""``%%secure_train``: run one cell in an isolated sandbox, live, and record the run.

    %%secure_train --inputs X,y,data/train.parquet --outputs weights --secret HF_TOKEN
    ...training code...

    %%secure_train --inputs data=train.csv.enc --role trainer
    df = securenb.sandbox.read_csv("data")     # decrypted inside the sandbox only

The first run of a configuration starts a sandboxed kernel; later runs reuse it
and only send the cell. Output (text, rich displays) streams into this cell as
it is produced, with secret values redacted. A failing cell shows the sandbox's
traceback and fails this cell; a crash, a limit or a timeout inside ends only
the sandbox. Interrupting this kernel interrupts the sandboxed work.
"""

from __future__ import annotations

import argparse
import atexit
import shlex
import sys
from pathlib import Path
from typing import Any

from IPython.core.display_functions import clear_output, publish_display_data
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, magics_class

from securenb.errors import SecurenbError
from securenb.isolation.errors import IsolationError
from securenb.isolation.outbox import printable
from securenb.isolation.spec import BACKENDS
from securenb.isolation.train import RunResult, Trainer, TrainOptions
from securenb.kernel.args import MagicArgumentParser


class SecureTrainError(Exception):
    """The sandboxed cell failed; IPython shows the sandbox's own traceback."""

    def __init__(self, result: RunResult) -> None:
        reply = result.reply
        super().__init__(f"{reply.ename or result.status}: {reply.evalue or reply.detail}")
        self.result = result

    def _render_traceback_(self) -> list[str]:
        reply = self.result.reply
        head = f"[securenb] sandboxed cell {self.result.status} ({self.result.backend}, " \
               f"run {self.result.run_id[:12]})"
        lines = [head]
        lines += reply.traceback or [f"{reply.ename}: {reply.evalue}" if reply.ename else ""]
        if reply.detail:
            lines.append(reply.detail)
        return [line for line in lines if line]


def _gpus(text: str | None) -> int | str | None:
    if text is None:
        return None
    if text == "all":
        return "all"
    if text.isdigit():
        return int(text)
    raise IsolationError(f"--gpus {text!r}: expected a number or 'all'")


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _sink(msg_type: str, content: dict[str, Any]) -> None:
    """Replay one (already redacted) sandbox output message in this cell."""
    if msg_type == "stream":
        stream = sys.stderr if content["name"] == "stderr" else sys.stdout
        stream.write(content["text"])
        stream.flush()
    elif msg_type == "clear_output":
        clear_output(wait=bool(content.get("wait")))  # type: ignore[no-untyped-call]
    else:
        publish_display_data(  # type: ignore[no-untyped-call]
            data=content.get("data", {}), metadata=content.get("metadata", {}),
            transient=content.get("transient") or None,
            **({"update": True} if msg_type == "update_display_data" else {}),
        )



def _parser() -> argparse.ArgumentParser:
    p = MagicArgumentParser(prog="%%secure_train", add_help=False)
    p.add_argument("--backend", choices=BACKENDS, default=None, help="Sandbox (default: policy).")
    p.add_argument("--gpus", default=None, help="Number of GPUs or 'all' (default: policy).")
    p.add_argument("--image", default=None, help="Container image (podman, docker).")
    p.add_argument("--inputs", default=None,
                   help="Comma-separated kernel variables, paths, or NAME=FILE.enc datasets.")
    p.add_argument("--outputs", default=None, help="Comma-separated variables to bring back.")
    p.add_argument("--secret", action="append", default=[],
                   help="NAME or NAME=env:VAR|keyring:ENTRY|file:PATH (repeatable).")
    p.add_argument("--timeout", type=int, default=None, help="Seconds (default: policy).")
    p.add_argument("--memory", default=None, help="e.g. 8g (default: policy).")
    p.add_argument("--network", default="none", choices=["none"], help="Only 'none'.")
    p.add_argument("--resume", action="store_true", help="Resume from the newest checkpoint.")
    p.add_argument("--output-dir", default="outputs", help="The sandbox's writable folder.")
    p.add_argument("--role", default=None,
                   help="Your role for encrypted datasets (default: $SECURENB_ROLE).")
    return p


PARSER = _parser()


def parse_options(line: str) -> TrainOptions:
    """The magic's line as TrainOptions; any mistake is a UsageError naming it."""
    args = PARSER.parse_args(shlex.split(line))
    try:
        return TrainOptions(
            backend=args.backend, gpus=_gpus(args.gpus), image=args.image,
            inputs=_csv(args.inputs), outputs=_csv(args.outputs), secrets=tuple(args.secret),
            timeout=args.timeout, memory=args.memory, network=args.network, resume=args.resume,
            output_dir=args.output_dir, role=args.role,
        )
    except SecurenbError as exc:
        raise UsageError(f"%%secure_train: {exc}") from None


@magics_class
class SecureTrainMagics(Magics):
    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self.trainer = Trainer()
        atexit.register(self.trainer.shutdown)

    @cell_magic
    def secure_train(self, line: str, cell: str) -> None:
        """Run this cell in an isolated sandbox. Options: see ``PARSER`` / docs/isolation.md."""
        options = parse_options(line)
        assert self.shell is not None
        try:
            try:
                result = self.trainer.run(cell, options, self.shell.user_ns, _sink, Path.cwd())
            finally:  # a cell that has replied is on record: a kernel killed next loses nothing
                self.trainer.flush()
        except SecurenbError as exc:
            raise UsageError(f"%%secure_train: {exc}") from None
        for item in result.rejected:  # names are the sandbox's: escaped, one line each
            print(f"[securenb] rejected output {printable(str(item.path))}: "
                  f"{printable(item.reason)}", file=sys.stderr)
        if result.status != "ok":
            raise SecureTrainError(result)


def register(ipython: InteractiveShell) -> None:
    """Add ``%%secure_train`` to ``ipython`` (called by ``%load_ext securenb``)."""
    ipython.register_magics(SecureTrainMagics(ipython))


load_ipython_extension = register
