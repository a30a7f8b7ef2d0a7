"""`securenb sign | verify | cosign`: models, notebooks and cosign blobs.

Exit codes: 0 signed / verified; 1 checked and found bad (tampered, renamed,
untrusted, expired); 2 could not check (missing file, bad key, bad policy).

Memory: each command unlocks the signing key (scrypt: 64 MiB while it runs)
before it imports the workspace, the output helpers and the signing service,
so that the KDF's buffer and those imports do not add up in the peak
(securenb.signing.unlock, docs/signing.md). Hence the imports inside the
commands, and the module-level imports kept to light modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from securenb.signing.options import HASH_ALGORITHMS, SCOPES
from securenb.signing.unlock import open_workspace

if TYPE_CHECKING:
    from securenb.core.keys.purposes import Purpose
    from securenb.core.workspace import Workspace
    from securenb.signing.remote import RemoteSigner
    from securenb.signing.result import SignResult, Verification

# securenb.cli.output's json_option; that module imports the workspace at load time.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")

_path = click.Path(exists=True, path_type=Path)
_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.argument("path", type=_path)
@click.option("--key", "key_ref", help="Key reference: NAME | file:PATH | env:VAR | keyring:NAME "
              "(default: [signing] key of the policy).")
@click.option("--certificate", type=_file, help="Sign with this certificate (PEM) for the key.")
@click.option("--chain", type=_file, multiple=True, help="Intermediate certificates (PEM).")
@click.option("--sigstore", is_flag=True,
              help="Sigstore keyless (OIDC token in $SIGSTORE_ID_TOKEN; needs the network).")
@click.option("--hash", "algorithm", type=click.Choice(HASH_ALGORITHMS), default="sha256",
              show_default=True, help="Digest of each model file.")
@click.option("--signature", type=click.Path(dir_okay=False, path_type=Path),
              help="Bundle to write (default: PATH.sig beside the model).")
@click.option("--ignore", multiple=True, help="Path inside the model not to sign (repeatable).")
@click.option("--scope", type=click.Choice(SCOPES), default="source", show_default=True,
              help="Notebooks: 'source' survives re-execution, 'executed' covers outputs.")
@click.option("--allow-secrets", is_flag=True,
              help="Notebooks: sign even if it holds what looks like secrets.")
@json_option
@click.pass_context
def sign(ctx: click.Context, path: Path, key_ref: str | None, certificate: Path | None,
         chain: tuple[Path, ...], sigstore: bool, algorithm: str, signature: Path | None,
         ignore: tuple[str, ...], scope: str, allow_secrets: bool, as_json: bool) -> None:
    """Sign a model (file or folder) or a notebook (.ipynb) with a release key.

    With no passphrase variable set and the workspace's agent running, the
    agent signs (and records): this process unlocks nothing.
    """
    from securenb.signing.service import SignRequest

    def absolute(p: Path | None) -> str | None:
        return str(p.absolute()) if p else None

    request = SignRequest.from_json({
        "path": absolute(path), "key": key_ref, "certificate": absolute(certificate),
        "chain": [absolute(c) for c in chain], "sigstore": sigstore, "algorithm": algorithm,
        "signature": absolute(signature), "scope": scope, "ignore": list(ignore),
        "allow_secrets": allow_secrets,
    })
    agent = _agent(ctx)
    if agent is not None:
        if sigstore:  # the agent signs as this caller: with this process's token
            import dataclasses

            from securenb.signing.model_sign import caller_token

            request = dataclasses.replace(request, sigstore_token=caller_token())
        result = agent.sign(request)
    else:
        ws = _workspace(ctx, ("record", "release"))
        from securenb.signing import service

        with _progress(path, ignore) as advance:
            result = service.sign(ws, request, progress=advance)
    from securenb.cli.output import emit

    emit(result.to_json(), as_json, lambda _: _render_signed(result))


@click.command()
@click.argument("path", type=_path)
@click.option("--signature", type=_file, help="The signature (default: PATH.sig; notebooks "
              "carry theirs).")
@click.option("--key", "keys", multiple=True, help="The signer's public key (file or key "
              "reference): pins the signer. In a workspace it must also be trusted by the "
              "policy; with no workspace it is what you trust.")
@click.option("--policy", type=_file, help="Verify against this trust policy file only "
              "(securenb.toml or pyproject.toml), as a recipient: nothing is recorded.")
@click.option("--allow-failed", is_flag=True, help="A run output (securenb run) of a run that "
              "failed verifies too (its record checked); without it, it fails verification.")
@json_option
@click.pass_context
def verify(ctx: click.Context, path: Path, signature: Path | None, keys: tuple[str, ...],
           policy: Path | None, allow_failed: bool, as_json: bool) -> None:
    """Verify a model, a notebook, a cosign-signed file or an attestation (.intoto.json).

    In a workspace the verification is attested and audited (by the workspace's
    agent when this process has no passphrase and the agent runs). With no workspace
    (a recipient) or with --policy, only the files and the keys given count:
    no passphrase, no network, nothing written.
    """
    root = ctx.find_root()
    start = root.obj.get("directory") if root.obj else None
    from securenb.core.locate import workspace_root

    ws = _workspace(ctx) if policy is None and workspace_root(start) is not None else None
    from securenb.cli.output import emit
    from securenb.signing import service

    agent = _agent(ctx) if ws is not None else None
    with _progress(path, ()) as advance:
        if ws is not None and agent is not None:  # the agent records it (its record key)
            result = agent.verify(path.absolute(), signature.absolute() if signature else None,
                                  service.pinned_keys(keys, ws.keystore), allow_failed)
        elif ws is not None:
            result = service.verify(ws, path, signature=signature, keys=keys, progress=advance,
                                    allow_failed=allow_failed)
        else:
            result = service.verify_files(path, signature=signature, keys=keys, policy=policy,
                                          progress=advance, allow_failed=allow_failed)

    emit(result.to_json(), as_json, lambda _: _render_verified(result))
    if not result.verified:
        raise SystemExit(1)


@click.group()
def cosign() -> None:
    """cosign `sign-blob --key` signatures: produce and verify them."""


@cosign.command("sign-blob")
@click.argument("path", type=_file)
@click.option("--key", "key_ref", help="Key reference (default: [signing] blob_key of the "
              "policy); a key store key must be a blob key.")
@click.option("--output-signature", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the base64 signature (default: PATH.sig).")
@json_option
@click.pass_context
def sign_blob(ctx: click.Context, path: Path, key_ref: str | None,
              output_signature: Path | None, as_json: bool) -> None:
    """Sign PATH as `cosign sign-blob --key` does (base64 DER ECDSA), with a blob key."""
    ws = _workspace(ctx, ("record", "blob"))
    from securenb.cli.output import emit
    from securenb.signing import service

    result = service.sign_blob(ws, path, key_ref=key_ref, output=output_signature)
    emit(result.to_json(), as_json, lambda _: _render_signed(result))


@cosign.command("verify-blob")
@click.argument("path", type=_file)
@click.option("--signature", type=_file, help="The base64 signature (default: PATH.sig).")
@click.option("--key", "keys", multiple=True, help="Public key (cosign.pub) to check with; "
              "it must still be trusted by the policy (trust.keys).")
@json_option
@click.pass_context
def verify_blob(ctx: click.Context, path: Path, signature: Path | None, keys: tuple[str, ...],
                as_json: bool) -> None:
    """Verify a `cosign sign-blob --key` signature of PATH."""
    ctx.invoke(verify, path=path, signature=signature, keys=keys, policy=None, as_json=as_json)


def _agent(ctx: click.Context) -> RemoteSigner | None:
    """The workspace's agent, when this process has no passphrase of its own to unlock with."""
    import os

    from securenb.core.keys import DEFAULT_PASSPHRASE_ENV
    from securenb.core.locate import workspace_root
    from securenb.signing.remote import RemoteSigner

    root_ctx = ctx.find_root()
    root = workspace_root(root_ctx.obj.get("directory") if root_ctx.obj else None)
    if root is None or os.environ.get(DEFAULT_PASSPHRASE_ENV) is not None:
        return None
    return RemoteSigner.for_agent(root)


def _workspace(ctx: click.Context, purposes: tuple[Purpose, ...] = ("record",)) -> Workspace:
    """The workspace for this invocation (``-C DIR`` or the current folder), keys unlocked.

    As ``securenb.cli.output.workspace_from``, but the keys for ``purposes`` are
    unlocked before the workspace is imported (see the module docstring).
    """
    root = ctx.find_root()
    return open_workspace(root.obj.get("directory") if root.obj else None, purposes)


@contextmanager
def _progress(path: Path, ignore: tuple[str, ...]) -> Iterator[Callable[[int], None] | None]:
    """A byte progress bar for models (notebooks and small files need none)."""
    if path.suffix == ".ipynb" and path.is_file():
        yield None
        return
    from securenb.cli.output import progress_bar
    from securenb.signing.hashing import total_size

    with progress_bar(total_size(path, ignore), f"hashing {path.name}", bytes_=True) as advance:
        yield advance


def _render_signed(result: SignResult) -> None:
    from securenb.cli.output import console

    console.print(f"signed {result.kind} {result.path}", style="green", markup=False,
                  soft_wrap=True)
    console.print(f"  signature: {result.signature}\n  signer:    {result.signer.describe()}"
                  f"\n  hashes:    {result.algorithm}, {result.files} file(s)"
                  f"\n  via:       {result.signed_by}", highlight=False,
                  markup=False, soft_wrap=True)


def _render_verified(result: Verification) -> None:
    from securenb.cli.output import console

    lines = result.lines()
    colour = "green" if result.verified else "red"
    console.print(lines[0], style=f"bold {colour}", highlight=False, markup=False, soft_wrap=True)
    for line in lines[1:]:
        style = "red" if line.lstrip().startswith("problem:") else None
        console.print(line, style=style, highlight=False, markup=False, soft_wrap=True)
