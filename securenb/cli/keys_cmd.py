"""`securenb keys create | list | export-public | import | migrate`: the workspace key store.

Passphrases come from an environment variable or a hidden prompt, never from
an option (options end up in shell history and process lists).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click
from rich.table import Table

from securenb.cli.output import console, emit, json_option, workspace_from
from securenb.core.fsutil import atomic_write_bytes
from securenb.core.keys import ALGORITHMS, DEFAULT_PASSPHRASE_ENV, Algorithm, read_passphrase
from securenb.core.keys.pem import private_block, read_key_file
from securenb.core.keys.purposes import BLOB_KEY, RECORD_KEY, RELEASE_KEY, USES, Purpose
from securenb.errors import KeyError_, at

IMPORT_PASSPHRASE_ENV = "SECURENB_IMPORT_PASSPHRASE"  # noqa: S105 - a variable name

passphrase_env_option = click.option(
    "--passphrase-env",
    default=DEFAULT_PASSPHRASE_ENV,
    show_default=True,
    help="Environment variable holding the key's passphrase (else you are asked).",
)
force_option = click.option("--force", is_flag=True, help="Replace a key of the same name.")
purpose_option = click.option(
    "--purpose", type=click.Choice(["release", "blob"]), default="release", show_default=True,
    help="What the key may sign: release (models, notebooks) or blob (cosign sign-blob).",
)


@click.group()
def keys() -> None:
    """Create, list, export and import signing keys (stored encrypted)."""


@keys.command()
@click.argument("name")
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="ecdsa-p256",
    show_default=True,
    help="Key algorithm.",
)
@passphrase_env_option
@purpose_option
@force_option
@json_option
@click.pass_context
def create(
    ctx: click.Context, name: str, algorithm: str, passphrase_env: str, purpose: str,
    force: bool, as_json: bool
) -> None:
    """Generate key NAME for one purpose, encrypted under a passphrase."""
    store = workspace_from(ctx).keystore
    _refuse_existing(store.exists(name) and not force, store.key_path(name), name)
    passphrase = read_passphrase(passphrase_env, confirm=True, purpose=f"new key {name!r}")
    info = store.create(name, cast(Algorithm, algorithm), passphrase, overwrite=force,
                        purpose=cast(Purpose, purpose))
    emit(info.to_json(), as_json, lambda d: console.print(f"[green]created[/] {_line(d)}"))


@keys.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the keys: name, algorithm, key id, creation time (no secrets)."""
    emit([k.to_json() for k in workspace_from(ctx).keystore.list()], as_json, _render)


@keys.command("export-public")
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the PEM here instead of stdout.",
)
@click.pass_context
def export_public(ctx: click.Context, name: str, output: Path | None) -> None:
    """Print key NAME's public key (SPKI PEM, as cosign and openssl read it)."""
    pem = workspace_from(ctx).keystore.export_public(name)
    if output is None:
        click.echo(pem.decode(), nl=False)
    else:
        atomic_write_bytes(output, pem)


@keys.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Name to store the key under.")
@click.option(
    "--source-passphrase-env",
    default=IMPORT_PASSPHRASE_ENV,
    show_default=True,
    help="Variable holding the passphrase of the file imported (e.g. COSIGN_PASSWORD).",
)
@passphrase_env_option
@purpose_option
@force_option
@json_option
@click.pass_context
def import_(
    ctx: click.Context,
    path: Path,
    name: str,
    source_passphrase_env: str,
    passphrase_env: str,
    purpose: str,
    force: bool,
    as_json: bool,
) -> None:
    """Import a PEM (PKCS#8, SEC1) or cosign private key as NAME, re-encrypted."""
    store = workspace_from(ctx).keystore
    _refuse_existing(store.exists(name) and not force, store.key_path(name), name)
    passphrase_in = None
    if private_block(read_key_file(path), str(path)).encrypted:
        passphrase_in = read_passphrase(source_passphrase_env, purpose=str(path))
    passphrase_out = read_passphrase(passphrase_env, confirm=True, purpose=f"new key {name!r}")
    info = store.import_key(path, name, passphrase_in, passphrase_out, overwrite=force,
                            purpose=cast(Purpose, purpose))
    emit(info.to_json(), as_json, lambda d: console.print(f"[green]imported[/] {_line(d)}"))


@keys.command()
@click.option(
    "--passphrase-env", default=None,
    help="Variable holding the workspace key's passphrase (default: the policy's).",
)
@json_option
@click.pass_context
def migrate(ctx: click.Context, passphrase_env: str | None, as_json: bool) -> None:
    """Give a workspace made before key separation one key per purpose.

    The workspace key keeps signing records (attestations, provenance, audit
    checkpoints: the log stays verifiable); new release and blob keys, under
    the same passphrase, sign models, notebooks and cosign blobs.
    """
    from securenb.core.workspace import create_purpose_keys

    ws = workspace_from(ctx)
    store = ws.keystore
    missing = tuple(n for n in (RELEASE_KEY, BLOB_KEY) if not store.exists(n))
    legacy = [i.name for i in store.list() if i.purpose is None]
    if not missing and not legacy:
        emit({"migrated": False}, as_json, lambda _: console.print(
            "already migrated: one key per purpose (`securenb keys list`)"))
        return
    secret = read_passphrase(passphrase_env or ws.policy.signing.passphrase_env,
                             purpose=f"key {RECORD_KEY!r}")
    ws.adopt_signer(store.load(RECORD_KEY, secret))  # the same passphrase, checked first
    create_purpose_keys(store, secret, store.public(RECORD_KEY).algorithm, missing)
    for name in legacy:
        store.set_purpose(name, "release")
    created = {n: store.public(n).key_id for n in missing}
    ws.audit("keys.migrate", f"workspace:{ws.config['workspace_id']}",
             {"created": created, "release": legacy})
    emit({"migrated": True, "created": created, "release": legacy}, as_json,
         lambda _: _render_migration(missing, legacy))


def _render_migration(created: tuple[str, ...], legacy: list[str]) -> None:
    for name in created:
        purpose: Purpose = "release" if name == RELEASE_KEY else "blob"
        console.print(f"[green]created[/] {name} key: signs {USES[purpose]}")
    for name in legacy:
        console.print(f"key {name!r}: recorded as a release key ({USES['release']})")
    console.print(
        f"the {RECORD_KEY!r} key now signs only {USES['record']}. Models, notebooks and blobs "
        f"signed with it no longer verify here: re-sign them (`securenb sign`), and give "
        f"recipients .securenb/keys/{RELEASE_KEY}.pub (`securenb keys export-public "
        f"{RELEASE_KEY}`)", markup=False, soft_wrap=True)


def _refuse_existing(exists: bool, path: Path, name: str) -> None:
    """Fail before asking for passphrases, not after."""
    if exists:
        raise KeyError_(at(path, f"key {name!r} already exists; use --force to replace it"))


def _line(info: dict[str, str | None]) -> str:
    return f"{info['name']}  {info['purpose']}  {info['algorithm']}  {str(info['key_id'])[:16]}"


def _render(items: list[dict[str, str | None]]) -> None:
    if not items:
        console.print("no keys; create one with `securenb keys create NAME`")
        return
    table = Table("name", "purpose", "algorithm", "key id", "created", "provider")
    for info in items:
        table.add_row(
            info["name"], info["purpose"] or "none: run `securenb keys migrate`",
            info["algorithm"], str(info["key_id"])[:16], info["created"], info["provider"]
        )
    console.print(table)

