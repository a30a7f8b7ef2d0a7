"""`securenb audit verify | list | show | prove | checkpoint | verify-proof`.

``verify`` and ``verify-proof`` also work outside any workspace, on copied
files and a public key: the audit log is meant to be checked by people who
only have the files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape
from rich.table import Table

from securenb.cli.output import console, emit, err_console, json_option, workspace_from
from securenb.core.audit import (
    AuditRecord,
    AuditReport,
    AuditVerificationError,
    InclusionProof,
    leaf_hash,
    open_checkpoint,
    verify_inclusion_proof,
    verify_log,
)
from securenb.core.audit.consistency import unaccounted
from securenb.core.audit.entry import utc_now
from securenb.core.audit.note import SignedCheckpoint
from securenb.core.audit.trust import Trust, keep
from securenb.core.audit.trust import resolve as resolve_trust
from securenb.core.keys import PublicKey
from securenb.core.workspace import Workspace
from securenb.errors import AuditError, SecurenbError, WorkspaceError

WORKSPACE_PUB = ".securenb/keys/workspace.pub"

public_key_option = click.option(
    "--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key of the log (default: the policy's [audit] key, the kept key, "
         "else the workspace key, reported as unpinned).",
)


@click.group()
def audit() -> None:
    """The Merkle audit log: verify it offline, read it, prove entries are in it."""


def _record_json(record: AuditRecord) -> dict[str, Any]:
    return {"index": record.index, **record.entry.to_json()}


def _workspace(ctx: click.Context, required: bool) -> Workspace | None:
    try:
        return workspace_from(ctx)
    except WorkspaceError:
        if required:
            raise
        return None


def _pinned(ws: Workspace, found: PublicKey | None) -> tuple[PublicKey | None, str]:
    """The key the policy's ``[audit] key`` pins (a file outside .securenb/ or a key id)."""
    pin, source = ws.policy.audit.key, ws.policy_and_source[1]
    if pin is None:
        return None, ""
    where = f"[audit] key in {source}"
    if pin.startswith("sha256:"):
        if found is None or found.key_id != pin.removeprefix("sha256:").lower():
            have = f"key {found.key_id[:16]}" if found else "no key"
            raise AuditError(f"{where} pins key {pin[7:23]}, but {WORKSPACE_PUB} holds {have}")
        return found, where
    path = (ws.root / pin).resolve()
    if path.is_relative_to(ws.dir.resolve()):
        raise SecurenbError(f"{where}: {pin} is inside {ws.dir}, the folder it is meant to "
                            "check; pin a copy kept outside it, or the key id")
    try:
        return PublicKey.from_pem(path.read_bytes(), source=str(path)), f"{where} ({pin})"
    except OSError as exc:
        raise SecurenbError(f"{where}: cannot read {path}: {exc.strerror}") from exc


def _trust(log_dir: Path, public_key: Path | None,
           ws: Workspace | None) -> tuple[Trust, str | None]:
    """The key to verify with (pinned or not) and the origin the log must have."""
    given, source = None, ""
    if public_key is not None:
        given, source = PublicKey.from_pem(public_key.read_bytes(), source=str(public_key)), \
            f"--public-key {public_key}"
    found, origin = None, None
    if ws is not None:
        with contextlib.suppress(SecurenbError):
            found = ws.public_key()
        if given is None:
            given, source = _pinned(ws, found)
        own_log = log_dir.resolve() == (ws.dir / "audit").resolve()
        origin = ws.policy.audit.origin or (ws.origin if own_log else None)
    trust = resolve_trust(log_dir, given, source, found, WORKSPACE_PUB)
    if trust.kept is not None and origin is None:
        origin = trust.kept.checkpoint.origin
    return trust, origin


@audit.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Verify this audit folder (a copy) instead of the workspace's.")
@public_key_option
@click.option("--trusted-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint kept from earlier (`audit checkpoint`): the log must extend it.")
@click.option("--against-store", is_flag=True,
              help="Also check that every run, attestation, signature and artifact of the "
                   "workspace has its audit entry.")
@json_option
@click.pass_context
def verify(ctx: click.Context, directory: Path | None, public_key: Path | None,
           trusted_checkpoint: Path | None, against_store: bool, as_json: bool) -> None:
    """Recompute the whole log from its entries and check every checkpoint.

    The key comes from --public-key, the policy's [audit] key, or the checkpoint
    kept (outside the workspace) by the last verification; a key found only in
    the workspace is reported as unpinned. The log must extend the kept checkpoint
    (rollback detection), which is then moved up to the verified head.

    Exit 0: intact. Exit 1: tampered (each problem is listed). Exit 2: could not check.
    """
    ws = _workspace(ctx, required=directory is None or against_store)
    log_dir = directory or (ws.dir / "audit" if ws else Path("."))
    try:
        trust, origin = _trust(log_dir, public_key, ws)
    except AuditError as exc:  # the key changed: as much a tampering as an edited entry
        _fail(AuditReport(log_dir, 0, 0, None, (str(exc),)), None, as_json)
    trusted = [trust.kept.checkpoint] if trust.kept else []
    if trusted_checkpoint is not None:
        try:
            trusted.append(open_checkpoint(trusted_checkpoint.read_bytes(), trust.key,
                                           source=str(trusted_checkpoint)))
        except AuditError as exc:  # the reference we were given is unusable: cannot check
            raise SecurenbError(str(exc)) from exc
    try:
        report = verify_log(log_dir, trust.key, trusted=trusted, origin=origin)
    except AuditVerificationError as exc:
        _fail(exc.report, trust, as_json)
    if against_store:
        assert ws is not None
        missing = unaccounted(ws.audit_log.read(), ws.store)
        if missing:
            _fail(dataclasses.replace(report, problems=tuple(missing)), trust, as_json)
    assert report.head_note is not None and report.head is not None
    try:
        keep(log_dir, trust.key, SignedCheckpoint(report.head, report.head_note),
             trust.kept.since if trust.kept else utc_now())
    except OSError as exc:  # verified all the same; only the next rollback check is weaker
        err_console.print(f"warning: could not keep the verified checkpoint: {exc}",
                          markup=False, highlight=False)
    emit({**report.to_json(), "trust": trust.to_json()}, as_json, _render_report)


def _fail(report: AuditReport, trust: Trust | None, as_json: bool) -> NoReturn:
    emit({**report.to_json(), "trust": trust.to_json() if trust else None}, as_json,
         _render_report)
    raise SystemExit(1)


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
    ws = _workspace(ctx, required=public_key is None)
    log_dir = ws.dir / "audit" if ws else Path(".")
    try:
        trust, origin = _trust(log_dir, public_key, ws)
    except AuditError as exc:
        raise SystemExit(_bad_proof(str(exc), None, as_json)) from None
    try:
        proof = InclusionProof.from_json(json.loads(proof_file.read_text()))
    except (ValueError, AuditError) as exc:
        raise SecurenbError(f"{proof_file}: not an inclusion proof ({exc})") from exc
    try:
        cp = verify_inclusion_proof(proof, trust.key, origin)
    except AuditError as exc:
        raise SystemExit(_bad_proof(str(exc), proof.index, as_json)) from None
    data = {"ok": True, "index": proof.index, "tree_size": cp.size, "origin": cp.origin,
            "trust": trust.to_json()}
    emit(data, as_json, lambda d: console.print(
        f"[green]entry {d['index']} is in {d['origin']} at size {d['tree_size']}[/]"))


def _bad_proof(problem: str, index: int | None, as_json: bool) -> int:
    emit({"ok": False, "index": index, "problem": problem}, as_json,
         lambda d: console.print(f"[red]bad proof[/] {d['problem']}", markup=False))
    return 1


def _render_report(data: dict[str, Any]) -> None:
    trust = data.get("trust")
    if data["ok"]:
        console.print(f"[green]verified[/] {data['directory']}: {data['entries']} entries, "
                      f"{data['checkpoints']} signed checkpoints, root {data['root_hash']}")
        if trust:
            console.print(f"  key {trust['key_id'][:16]}: {trust['source']}", markup=False,
                          highlight=False)
        if trust and not trust["pinned"]:
            console.print(f"[yellow]warning[/]: the key is unpinned; it is now kept for the "
                          f"next verification. Pin it in the policy: {escape('[audit]')} key = "
                          f"\"sha256:{trust['key_id']}\"", highlight=False)
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
