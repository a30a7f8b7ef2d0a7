"""`securenb init | record | artifacts | show | attestations`: the workspace store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from securenb.cli.output import console, emit, json_option, track, workspace_from
from securenb.core.keys.providers import read_passphrase
from securenb.core.store import AttestationRecord, normalize_digest
from securenb.core.workspace import Workspace
from securenb.errors import WorkspaceError


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option(
    "--algorithm",
    type=click.Choice(["ecdsa-p256", "ecdsa-p384", "ed25519"]),
    default="ecdsa-p256",
    show_default=True,
    help="Algorithm of the workspace signing key.",
)
@json_option
def init(directory: Path, algorithm: str, as_json: bool) -> None:
    """Create a .securenb/ workspace and its encrypted signing key.

    The key passphrase comes from $SECURENB_KEY_PASSPHRASE or a prompt.
    """
    passphrase = read_passphrase(
        "SECURENB_KEY_PASSPHRASE", confirm=True, purpose="new workspace key"
    )
    ws = Workspace.init(directory, passphrase, algorithm)
    info = {
        "workspace": str(ws.dir),
        "origin": ws.origin,
        "key_id": ws.public_key().key_id,
        "algorithm": algorithm,
    }
    emit(
        info,
        as_json,
        lambda d: console.print(
            f"[green]created[/] {d['workspace']}\n  signing key {d['algorithm']} {d['key_id'][:16]}"
        ),
    )


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--media-type", help="Media type to record (default: guessed from the name).")
@json_option
@click.pass_context
def record(
    ctx: click.Context, paths: tuple[Path, ...], media_type: str | None, as_json: bool
) -> None:
    """Hash files and record them as artifacts (folders: every file inside)."""
    ws = workspace_from(ctx)
    files = [p for path in paths for p in _files_under(path)]
    recorded = [
        ws.record_artifact(p, media_type).to_json()
        for p in track(files, len(files), "hashing and recording")
    ]
    emit(recorded, as_json, _render_artifacts)


@click.command()
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@json_option
@click.pass_context
def artifacts(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recorded artifacts."""
    ws = workspace_from(ctx)
    emit([a.to_json() for a in ws.store.list_artifacts(limit)], as_json, _render_artifacts)


@click.command()
@click.argument("target")
@json_option
@click.pass_context
def show(ctx: click.Context, target: str, as_json: bool) -> None:
    """Show an artifact by digest (or prefix) or path, with its attestations."""
    ws = workspace_from(ctx)
    found = ws.store.artifacts_at(ws.relpath(Path(target))) if os.path.exists(target) else []
    if not found:
        try:
            found = ws.store.find_artifacts(target)
        except WorkspaceError:
            found = []
    digests = {a.digest for a in found}
    if not digests:
        raise WorkspaceError(f"{target}: no recorded artifact with this path or digest")
    if len(digests) > 1 and not os.path.exists(target):
        raise WorkspaceError(f"{target}: digest prefix is ambiguous ({len(digests)} matches)")
    digest = found[0].digest
    checked = _checked(ws, ws.store.attestations_for(digest))
    data = {"digest": digest, "versions": [a.to_json() for a in found], "attestations": checked}
    emit(data, as_json, _render_show)
    if any(row["verified"] is False for row in checked):
        raise SystemExit(1)


@click.command()
@click.argument("digest", required=False)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check each envelope's blob and signature.",
)
@json_option
@click.pass_context
def attestations(ctx: click.Context, digest: str | None, verify: bool, as_json: bool) -> None:
    """List attestations (of one subject DIGEST, or all), checking their signatures."""
    ws = workspace_from(ctx)
    records = (
        ws.store.attestations_for(normalize_digest(digest))
        if digest
        else ws.store.list_attestations()
    )
    rows = _checked(ws, records) if verify else [rec.to_json() for rec in records]
    emit(rows, as_json, _render_attestations)
    if any(row.get("verified") is False for row in rows):
        raise SystemExit(1)


def _checked(ws: Workspace, records: list[AttestationRecord]) -> list[dict[str, Any]]:
    """Each record as JSON with ``verified`` (blob digest + DSSE signature) and any error."""
    return [ws.checked_attestation(rec) for rec in records]


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and ".securenb" not in p.parts)


def _render_artifacts(rows: list[dict[str, Any]]) -> None:
    table = Table("digest", "path", "size", "media type", "run", "recorded")
    for a in rows:
        table.add_row(
            a["digest"][:16],
            a["path"],
            f"{a['size']:,}",
            a["media_type"],
            a["run_id"] or "",
            a["created"][:19],
        )
    console.print(table)


def _render_show(data: dict[str, Any]) -> None:
    console.print(f"[bold]sha256:{data['digest']}[/]")
    for v in data["versions"]:
        console.print(f"  {v['path']}  {v['size']:,} bytes  {v['media_type']}  {v['created'][:19]}")
    _render_attestations(data["attestations"])


def _render_attestations(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("[dim]no attestations[/]")
        return
    table = Table("envelope", "predicate type", "subjects", "recorded", "status")
    for r in rows:
        verified = r.get("verified")
        status = (
            ""
            if verified is None
            else "[green]verified[/]"
            if verified
            else f"[red]{r.get('error')}[/]"
        )
        table.add_row(
            r["envelope"][:16],
            r["predicate_type"],
            ", ".join(s["name"] for s in r["subjects"]),
            r["created"][:19],
            status,
        )
    console.print(table)
