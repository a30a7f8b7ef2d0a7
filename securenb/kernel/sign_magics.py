"""``%sign_model PATH [--key K]`` and ``%verify_model PATH [--key K]``: signing from a notebook.

When a Jupyter server running the securenb extension started this kernel, the
request goes to that server (see securenb.signing.remote) and no key is ever
unlocked in the kernel, which any cell can read. Without one (papermill, a
terminal IPython), the kernel signs itself with the policy's key, whose
passphrase must then be in its environment. ``--key`` pins the expected signer
on every path, as ``securenb verify --key`` does.

The result shows as a widget in JupyterLab (HTML where widgets do not run,
e.g. a rendered notebook) and as text in a terminal; a failure also stops the
cell, so a pipeline does not go on with an unverified model.
"""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from securenb.core.locate import workspace_root
from securenb.core.workspace import Workspace, register_record_signer
from securenb.errors import SecurenbError
from securenb.kernel.args import MagicArgumentParser
from securenb.kernel.display import show_result
from securenb.signing import service
from securenb.signing.hashing import HASH_ALGORITHMS
from securenb.signing.notebook import SCOPES
from securenb.signing.remote import RemoteSigner, kernel_record_signer
from securenb.signing.result import SignResult, Verification


def register(ipython: Any) -> None:
    """Add the magics to ``ipython`` (called by securenb.kernel's ``load_ipython_extension``)."""
    ipython.register_magic_function(sign_model, "line", "sign_model")
    ipython.register_magic_function(verify_model, "line", "verify_model")
    register_record_signer(kernel_record_signer)  # run records go through the server too


_SIGN = MagicArgumentParser(
    prog="%sign_model", description="Sign a model (through the server if any)."
)
_SIGN.add_argument("path", help="model file or folder (or a notebook) to sign")
_SIGN.add_argument("--key", default=None, help="key store name (default: the policy's key)")
_SIGN.add_argument("--hash", dest="algorithm", choices=HASH_ALGORITHMS, default="sha256")
_SIGN.add_argument("--signature", default=None, help="bundle to write (default PATH.sig)")
_SIGN.add_argument("--scope", choices=SCOPES, default="source", help="notebook scope")
_VERIFY = MagicArgumentParser(
    prog="%verify_model", description="Verify a model; stop the cell if bad."
)
_VERIFY.add_argument("path", help="model file or folder (or a notebook) to verify")
_VERIFY.add_argument("--signature", default=None, help="the bundle (default PATH.sig)")
_VERIFY.add_argument("--key", dest="keys", action="append", default=[],
                     help="the signer's public key (file or key reference): pins the signer")


def sign_model(line: str) -> None:
    """Sign a model in the OpenSSF model-signing format (through the server if there is one)."""
    args = _SIGN.parse_args(shlex.split(line))
    request = service.SignRequest(
        path=_absolute(args.path),
        key=args.key,
        algorithm=args.algorithm,
        signature=_absolute(args.signature) if args.signature else None,
        scope=args.scope,
    )
    try:
        remote = _signer_for(Path(request.path))
        if remote is not None:
            result: SignResult = remote.sign(request)
        else:
            ws = Workspace.find(Path(request.path).parent)
            if not ws.policy.signing.in_kernel:
                raise UsageError(
                    "sign_model: policy [signing] in_kernel = false: keys never enter a kernel; "
                    "run JupyterLab with the securenb server extension, or start the agent "
                    "(`securenb agent start`), to sign from a notebook"
                )
            result = service.sign(ws, request)
    except SecurenbError as exc:
        raise UsageError(f"sign_model: {exc}") from None
    show(result)


def verify_model(line: str) -> None:
    """Verify a model against its signature and the trust policy; stop the cell if it fails."""
    args = _VERIFY.parse_args(shlex.split(line))
    path = Path(_absolute(args.path))
    signature = Path(_absolute(args.signature)) if args.signature else None
    try:
        remote = _signer_for(path)
        if remote is not None:
            root = workspace_root(path.parent)  # key store names are resolved here, files too
            keystore = Workspace(root).keystore if root is not None else None
            result = remote.verify(path, signature, service.pinned_keys(args.keys, keystore))
        else:
            result = service.verify(Workspace.find(path.parent), path, signature=signature,
                                    keys=args.keys)
    except SecurenbError as exc:
        raise UsageError(f"verify_model: {exc}") from None
    show(result)
    if not result.verified:
        raise UsageError(f"verify_model: {result.summary()}")


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def _signer_for(path: Path) -> RemoteSigner | None:
    """The signer of this kernel's securenb server, else the agent of ``path``'s workspace."""
    remote = RemoteSigner.for_this_kernel()
    if remote is not None:
        return remote
    root = workspace_root(path.parent)
    return RemoteSigner.for_agent(root) if root is not None else None


def show(result: SignResult | Verification) -> None:
    """A widget in JupyterLab, with HTML and text for everything else."""
    lines = result.lines() if isinstance(result, Verification) else [result.summary()]
    show_result("\n".join(lines), lambda: to_html(result))


def to_html(result: SignResult | Verification) -> str:
    """A green or red card: the verdict first, then who, when, what and why."""
    if isinstance(result, SignResult):
        ok, title = True, f"Signed {result.kind} {result.path}"
        rows = [
            ("signer", result.signer.describe()),
            ("signature", result.signature),
            ("hashes", f"{result.algorithm}, {result.files} file(s)"),
            ("via", result.via),
        ]
    else:
        ok = result.verified
        title = f"{'Verified' if ok else 'NOT verified'}: {result.kind} {result.path}"
        rows = [
            ("signer", result.signer.describe() if result.signer else "unknown"),
            ("signed", result.signed_at or "unknown"),
            ("trust", result.trust),
            *(("problem", p) for p in result.problems),
            *(("note", n) for n in result.notes),
        ]
    colour = "#1a7f37" if ok else "#cf222e"
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return (
        f"<div style='border-left:6px solid {colour};padding:4px 8px'>"
        f"<b style='color:{colour}'>{'&#10004;' if ok else '&#10008;'} {html.escape(title)}"
        f"</b><table>{body}</table></div>"
    )
