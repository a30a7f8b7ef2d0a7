"""`securenb keys create | list | export-public | import`: the workspace key store.

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
from securenb.errors import KeyError_, at

IMPORT_PASSPHRASE_ENV = "SECURENB_IMPORT_PASSPHRASE"  # noqa: S105 - a variable name

passphrase_env_option = click.option(
    "--passphrase-env",
    default=DEFAULT_PASSPHRASE_ENV,
    show_default=True,
    help="Environment variable holding the key's passphrase (else you are asked).",
)
force_option = click.option("--force", is_flag=True, help="Replace a key of the same name.")


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
@force_option
@json_option
@click.pass_context
def create(
    ctx: click.Context, name: str, algorithm: str, passphrase_env: str, force: bool, as_json: bool
) -> None:
    """Generate key NAME, encrypted under a passphrase."""
    store = workspace_from(ctx).keystore
    _refuse_existing(store.exists(name) and not force, store.key_path(name), name)
    passphrase = read_passphrase(passphrase_env, confirm=True, purpose=f"new key {name!r}")
    info = store.create(name, cast(Algorithm, algorithm), passphrase, overwrite=force)
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
@force_option
@json_option
@click.pass_context
def import_(
    ctx: click.Context,
    path: Path,
    name: str,
    source_passphrase_env: str,
    passphrase_env: str,
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
    info = store.import_key(path, name, passphrase_in, passphrase_out, overwrite=force)
    emit(info.to_json(), as_json, lambda d: console.print(f"[green]imported[/] {_line(d)}"))


def _refuse_existing(exists: bool, path: Path, name: str) -> None:
    """Fail before asking for passphrases, not after."""
    if exists:
        raise KeyError_(at(path, f"key {name!r} already exists; use --force to replace it"))


def _line(info: dict[str, str]) -> str:
    return f"{info['name']}  {info['algorithm']}  {info['key_id'][:16]}"


def _render(items: list[dict[str, str]]) -> None:
    if not items:
        console.print("no keys; create one with `securenb keys create NAME`")
        return
    table = Table("name", "algorithm", "key id", "created", "provider")
    for info in items:
        table.add_row(
            info["name"], info["algorithm"], info["key_id"][:16], info["created"], info["provider"]
        )
    console.print(table)

