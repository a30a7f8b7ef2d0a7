"""`securenb audit verify | list | show | prove | checkpoint | verify-proof`.

``verify`` and ``verify-proof`` also work outside any workspace, on copied
files and a public key: the audit log is meant to be checked by people who
only have the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from securenb.cli.output import console, emit, json_option, workspace_from
from securenb.core.audit import (
    AuditRecord,
    AuditVerificationError,
    InclusionProof,
    leaf_hash,
    open_checkpoint,
    verify_inclusion_proof,
    verify_log,
)
from securenb.core.keys import PublicKey
from securenb.errors import AuditError, SecurenbError

public_key_option = click.option(
    "--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key of the log (default: the workspace key).",
)


@click.group()
def audit() -> None:
    """The Merkle audit log: verify it offline, read it, prove entries are in it."""


def _key(ctx: click.Context, path: Path | None) -> PublicKey:
    if path is not None:
        return PublicKey.from_pem(path.read_bytes(), source=str(path))
    return workspace_from(ctx).public_key()


def _record_json(record: AuditRecord) -> dict[str, Any]:
    return {"index": record.index, **record.entry.to_json()}


@audit.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Verify this audit folder (a copy) instead of the workspace's.")
@public_key_option
@click.option("--trusted-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint kept from earlier (`audit checkpoint`): the log must extend it.")
@json_option
@click.pass_context
def verify(ctx: click.Context, directory: Path | None, public_key: Path | None,
           trusted_checkpoint: Path | None, as_json: bool) -> None:
    """Recompute the whole log from its entries and check every checkpoint.

    Exit 0: intact. Exit 1: tampered (each problem is listed). Exit 2: could not check.
    """
    key = _key(ctx, public_key)
    log_dir = directory or workspace_from(ctx).audit_log.directory
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted = open_checkpoint(trusted_checkpoint.read_bytes(), key,
                                      source=str(trusted_checkpoint))
        except AuditError as exc:  # the reference we were given is unusable: cannot check
            raise SecurenbError(str(exc)) from exc
    try:
        report = verify_log(log_dir, key, trusted=trusted)
    except AuditVerificationError as exc:
        emit(exc.report.to_json(), as_json, _render_report)
        raise SystemExit(1) from None
    emit(report.to_json(), as_json, _render_report)


@audit.command("list")
@click.option("--limit", default=20, show_default=True, help="How many of the latest entries.")
@click.option("--action", help="Only entries with this action (among the latest --limit).")
@json_option
@click.pass_context
def list_(ctx: click.Context, limit: int, action: str | None, as_json: bool) -> None:
    """The latest entries, oldest first."""
    records = workspace_from(ctx).audit_log.tail(limit)
    rows = [_record_json(r) for r in records if action is None or r.entry.action == action]
    emit(rows, as_json, _render_entries)


@audit.command()
@click.argument("index", type=int)
@json_option
@click.pass_context
def show(ctx: click.Context, index: int, as_json: bool) -> None:
    """One entry in full, with its leaf hash."""
    record = workspace_from(ctx).audit_log.get(index)
    data = {**_record_json(record), "leaf_hash": leaf_hash(record.leaf).hex()}
    emit(data, as_json, lambda d: console.print_json(json.dumps(d)))


@audit.command()
@click.argument("index", type=int)
@click.pass_context
def prove(ctx: click.Context, index: int) -> None:
    """Print the inclusion proof of entry INDEX as JSON (check it with `verify-proof`)."""
    proof = workspace_from(ctx).audit_log.inclusion_proof(index)
    click.echo(json.dumps(proof.to_json(), indent=2, sort_keys=True))


@audit.command()
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Print the latest signed checkpoint (keep it to detect a later rollback)."""
    click.echo(workspace_from(ctx).audit_log.head().note.to_text(), nl=False)


@audit.command("verify-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@public_key_option
@json_option
@click.pass_context
def verify_proof(ctx: click.Context, proof_file: Path, public_key: Path | None,
                 as_json: bool) -> None:
    """Check an inclusion proof offline against the log's public key (exit 1 if bad)."""
    key = _key(ctx, public_key)
    try:
        proof = InclusionProof.from_json(json.loads(proof_file.read_text()))
    except (ValueError, AuditError) as exc:
        raise SecurenbError(f"{proof_file}: not an inclusion proof ({exc})") from exc
    try:
        cp = verify_inclusion_proof(proof, key)
    except AuditError as exc:
        emit({"ok": False, "index": proof.index, "problem": str(exc)}, as_json,
             lambda d: console.print(f"[red]bad proof[/] {d['problem']}"))
        raise SystemExit(1) from None
    data = {"ok": True, "index": proof.index, "tree_size": cp.size, "origin": cp.origin}
    emit(data, as_json, lambda d: console.print(
        f"[green]entry {d['index']} is in {d['origin']} at size {d['tree_size']}[/]"))


def _render_report(data: dict[str, Any]) -> None:
    if data["ok"]:
        console.print(f"[green]verified[/] {data['directory']}: {data['entries']} entries, "
                      f"{data['checkpoints']} signed checkpoints, root {data['root_hash']}")
        return
    console.print(f"[red]FAILED[/] {data['directory']}: {len(data['problems'])} problem(s)")
    for problem in data["problems"]:
        console.print(f"  - {problem}", markup=False, highlight=False)


def _render_entries(rows: list[dict[str, Any]]) -> None:
    table = Table("#", "time", "actor", "action", "subject", "details")
    for r in rows:
        table.add_row(str(r["index"]), r["time"][:19], r["actor"], r["action"], r["subject"],
                      json.dumps(r["details"], sort_keys=True)[:60])
    console.print(table)
