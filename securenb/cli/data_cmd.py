"""`securenb data encrypt|decrypt|inspect|rotate|migrate|new-kek`: encrypted datasets.

The service (securenb.data) encrypts and decrypts; this layer renders results,
shows progress bars and records what happened in the workspace when there is
one (artifacts and audit entries: digests, dataset ids, KEK ids and URIs,
never a key).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from securenb.cli.output import console, emit, json_option, progress_bar, workspace_from
from securenb.core.attest import DATASET_PREDICATE, Subject, make_statement
from securenb.data.dataset import (
    DEFAULT_ALGORITHM,
    check_access,
    decrypt,
    encrypt,
    inspect,
    manifest_of,
    media_type_of,
    rotate,
)
from securenb.data.errors import DataFormatError
from securenb.data.fernet_legacy import migrate, plaintext_name
from securenb.data.kek import DEFAULT_KEK_URI, create_local_kek
from securenb.data.manifest import Schema
from securenb.data.streaming_aead import ALGORITHMS
from securenb.errors import WorkspaceError, at

F = TypeVar("F", bound=Callable[..., Any])

_path = click.Path(dir_okay=False, path_type=Path)
_existing = click.Path(exists=True, dir_okay=False, path_type=Path)

role_option = click.option(
    "--role", envvar="SECURENB_ROLE",
    help="Your role; refused unless the dataset allows it. [env: SECURENB_ROLE]",
)
recorded_kek_option = click.option(
    "--kek", "kek_uri", envvar="SECURENB_KEK_URI",
    help="KEK URI (default: the one recorded in the manifest). [env: SECURENB_KEK_URI]",
)


def _new_kek_option() -> Callable[[F], F]:
    return click.option(
        "--kek", "kek_uri", envvar="SECURENB_KEK_URI", default=DEFAULT_KEK_URI, show_default=True,
        help="KEK URI: env:NAME, file:PATH, keyring:NAME, or a KMS URI (gcp-kms://, aws-kms://).",
    )


def _dataset_options(command: F) -> F:
    for option in reversed([
        click.option("--role", "roles", multiple=True,
                     help="A role allowed to decrypt (repeat; none: no restriction)."),
        click.option("--schema", "schema_file", type=_existing,
                     help="Schema JSON to record; the plaintext is checked against it first."),
        click.option("--infer-schema", is_flag=True,
                     help="Infer the schema from the plaintext (loads it into memory)."),
        click.option("--source", help="Where the data came from (default: the input path)."),
        click.option("--algorithm", type=click.Choice(sorted(ALGORITHMS)),
                     default=DEFAULT_ALGORITHM, show_default=True),
    ]):
        command = option(command)
    return command


@click.group("data")
def data() -> None:
    """Encrypted datasets: Tink streaming AEAD at rest, envelope keys, manifests."""


@data.command("encrypt")
@click.argument("src", type=_existing)
@click.option("-o", "--output", type=_path,
              help="Default: SRC.enc (its manifest: SRC.enc.manifest.json).")
@_new_kek_option()
@_dataset_options
@json_option
@click.pass_context
def encrypt_cmd(
    ctx: click.Context, src: Path, output: Path | None, kek_uri: str, roles: tuple[str, ...],
    schema_file: Path | None, infer_schema: bool, source: str | None, algorithm: str,
    as_json: bool,
) -> None:
    """Encrypt SRC under a fresh data key wrapped by a KEK, with its manifest."""
    schema = _schema_for(src, src.name, schema_file, infer_schema)
    with progress_bar(src.stat().st_size, f"encrypt {src.name}", bytes_=True) as advance:
        result = encrypt(
            src, output, kek=kek_uri, roles=roles, schema=schema, source=source or str(src),
            algorithm=algorithm, progress=advance,
        )
    info = result.to_json()
    _record(ctx, "data.encrypt", Path(result.ciphertext), result.ciphertext_sha256, {
        "dataset_id": result.dataset_id, "name": result.name, "kek_id": result.kek_id,
        "kek_uri": result.kek_uri, "roles": list(result.roles), "algorithm": result.algorithm,
    })
    emit(info, as_json, _render_encrypted)


@data.command("decrypt")
@click.argument("src", type=_existing)
@click.option("-o", "--output", type=_path, required=True, help="Plaintext file (mode 0600).")
@recorded_kek_option
@role_option
@json_option
@click.pass_context
def decrypt_cmd(
    ctx: click.Context, src: Path, output: Path, kek_uri: str | None, role: str | None,
    as_json: bool,
) -> None:
    """Decrypt SRC to OUTPUT: all segments authenticated and the digest checked, or nothing."""
    manifest = manifest_of(src)
    check_access(manifest, role, src)
    with progress_bar(manifest.plaintext_size, f"decrypt {src.name}", bytes_=True) as advance:
        result = decrypt(src, output, kek=kek_uri, role=role, progress=advance)
    _record(ctx, "data.decrypt", None, result.ciphertext_sha256, {
        "dataset_id": result.dataset_id, "output": str(output), "role": role,
    })
    emit(result.to_json(), as_json, lambda d: console.print(
        f"[green]decrypted[/] {d['ciphertext']} -> {d['output']} ({d['plaintext_size']:,} bytes, "
        "every segment authenticated, digest matches the manifest)"
    ))


@data.command("inspect")
@click.argument("path", type=_existing)
@click.option("--verify", is_flag=True, help="Also hash the ciphertext against the manifest.")
@json_option
def inspect_cmd(path: Path, verify: bool, as_json: bool) -> None:
    """Say what PATH is (dataset, bare Tink stream, legacy Fernet file) without a key."""
    found = inspect(path, verify_digest=verify)
    emit(found.to_json(), as_json, _render_inspection)
    if found.problems:
        raise SystemExit(1)


@data.command("rotate")
@click.argument("paths", nargs=-1, required=True, type=_existing)
@click.option("--to", "new_kek", required=True, help="URI of the new KEK.")
@recorded_kek_option
@json_option
@click.pass_context
def rotate_cmd(
    ctx: click.Context, paths: tuple[Path, ...], new_kek: str, kek_uri: str | None, as_json: bool
) -> None:
    """Re-wrap the data keys of PATHS under a new KEK; ciphertexts are not touched."""
    results = []
    for path in paths:
        result = rotate(path, new_kek, old_kek=kek_uri)
        _record(ctx, "data.rotate", None, result.ciphertext_sha256, {
            "dataset_id": result.dataset_id, "old_kek_id": result.old_kek_id,
            "new_kek_id": result.new_kek_id, "new_kek_uri": result.new_kek_uri,
        })
        results.append(result.to_json())
    emit(results, as_json, _render_rotated)


@data.command("migrate")
@click.argument("src", type=_existing)
@click.option("-o", "--output", type=_path, help="Default: SRC without .enc/.encrypted, plus .enc.")
@click.option("--fernet-key", "fernet_uri", required=True,
              help="Where the legacy Fernet key is: env:NAME, file:PATH or keyring:NAME.")
@_new_kek_option()
@_dataset_options
@json_option
@click.pass_context
def migrate_cmd(
    ctx: click.Context, src: Path, output: Path | None, fernet_uri: str, kek_uri: str,
    roles: tuple[str, ...], schema_file: Path | None, infer_schema: bool, source: str | None,
    algorithm: str, as_json: bool,
) -> None:
    """Re-encrypt a legacy Fernet file (SecureDataLoader recipe) as a dataset.

    Streams in constant memory; plaintext never reaches the disk, and the new
    file appears only once the Fernet MAC verified.
    """
    if schema_file or infer_schema:
        raise click.UsageError("check a schema after migrating: decrypt to memory with a loader")
    estimate = src.stat().st_size * 3 // 4
    with progress_bar(estimate, f"migrate {src.name}", bytes_=True) as advance:
        result = migrate(
            src, output, fernet=fernet_uri, kek=kek_uri, roles=roles, source=source,
            algorithm=algorithm, progress=advance,
        )
    _record(ctx, "data.migrate", Path(result.ciphertext), result.ciphertext_sha256, {
        "dataset_id": result.dataset_id, "from": str(src), "kek_id": result.kek_id,
        "name": plaintext_name(src),
    })
    emit(result.to_json(), as_json, _render_encrypted)


@data.command("new-kek")
@click.argument("uri")
@json_option
def new_kek_cmd(uri: str, as_json: bool) -> None:
    """Create a local AES-256 KEK at URI (file:PATH, mode 0600, or keyring:NAME)."""
    kek = create_local_kek(uri)
    emit({"uri": kek.uri, "key_id": kek.key_id}, as_json, lambda d: console.print(
        f"[green]created[/] KEK {d['key_id']} at {d['uri']}"
    ))


def _schema_for(
    src: Path, name: str, schema_file: Path | None, infer: bool
) -> Schema | None:
    """The schema to record: read from a file (and checked) or inferred from the plaintext."""
    if schema_file is None and not infer:
        return None
    if schema_file is not None and infer:
        raise click.UsageError("give --schema or --infer-schema, not both")
    from securenb.data.validation import check, infer_schema

    plain = _load_plaintext(src, media_type_of(name))
    if schema_file is None:
        return infer_schema(plain)
    try:
        schema = Schema.model_validate(json.loads(schema_file.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(at(schema_file, f"not JSON ({exc})")) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        problem = f"invalid schema at {where}: {first['msg']}"
        raise DataFormatError(at(schema_file, problem)) from None
    check(plain, schema, str(src))
    return schema


def _load_plaintext(path: Path, media_type: str) -> Any:
    if media_type in ("text/csv", "text/tab-separated-values"):
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        sep = "\t" if media_type == "text/tab-separated-values" else ","
        return pd.read_csv(path, sep=sep)
    if media_type == "application/vnd.apache.parquet":
        import pandas as pd

        return pd.read_parquet(path)
    if media_type in ("application/x-npy", "application/x-npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        return dict(loaded.items()) if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    raise DataFormatError(at(path, f"cannot check a schema of {media_type}: CSV, Parquet or NumPy"))


def _record(
    ctx: click.Context, action: str, artifact: Path | None, ciphertext_sha256: str,
    details: dict[str, Any],
) -> None:
    """Record in the workspace, if there is one: the ciphertext as an artifact, its manifest
    as a signed dataset attestation, and an audit entry.

    Subjects are ciphertext digests; the digest of a plaintext is never recorded
    (it would let anyone confirm a guess of the data).
    """
    try:
        ws = workspace_from(ctx)
    except WorkspaceError:
        return
    if artifact is not None:
        ws.record_artifact(artifact, "application/vnd.securenb.dataset")
        manifest = manifest_of(artifact)
        ws.attest(make_statement(
            [Subject(manifest.name, ciphertext_sha256)],
            DATASET_PREDICATE,
            manifest.model_dump(mode="json", by_alias=True, exclude_none=True),
        ))
    ws.audit(action, f"sha256:{ciphertext_sha256}", details)


def _render_encrypted(d: dict[str, Any]) -> None:
    roles = ", ".join(d["roles"]) or "any"
    console.print(
        f"[green]encrypted[/] {d['name']} -> {d['ciphertext']}\n"
        f"  dataset {d['dataset_id']}  {d['algorithm']}  {d['plaintext_size']:,} bytes\n"
        f"  sha256:{d['ciphertext_sha256']}\n"
        f"  KEK {d['kek_id']} ({d['kek_uri']})  roles: {roles}  "
        f"schema: {'yes' if d['schema'] else 'no'}\n"
        f"  manifest {d['manifest']}"
    )


def _render_rotated(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        console.print(
            f"[green]rotated[/] {r['ciphertext']}: KEK {r['old_kek_id']} -> {r['new_kek_id']}"
        )


def _render_inspection(d: dict[str, Any]) -> None:
    console.print(f"[bold]{d['path']}[/]: {d['kind']}, {d['size']:,} bytes")
    if d["header"]:
        header = d["header"]
        console.print(f"  header: {header['header_size']} bytes, AES-{header['key_bits']}")
    if d["kind"] == "fernet-legacy":
        console.print("  legacy Fernet file: `securenb data migrate` re-encrypts it")
    if manifest := d["manifest"]:
        console.print(
            f"  dataset {manifest['dataset_id']}: {manifest['name']} ({manifest['media_type']}), "
            f"{manifest['plaintext_size']:,} bytes, {manifest['encryption']['algorithm']}\n"
            f"  sha256:{manifest['ciphertext']['sha256']}\n"
            f"  source: {manifest.get('source', '-')}  created {manifest['created'][:19]}\n"
            f"  roles: {', '.join(manifest.get('roles', [])) or 'any'}  "
            f"schema: {'yes' if manifest.get('schema') else 'no'}"
        )
        key = d["key"]
        console.print(f"  KEK {key['kek_id']} ({key['kek_uri']}, {key['algorithm']})")
    if d["digest_ok"]:
        console.print("  [green]ciphertext digest matches the manifest[/]")
    for problem in d["problems"]:
        console.print(f"  [red]{problem}[/]")
