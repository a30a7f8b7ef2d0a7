"""A kernel of a securenb server signs through the server, and the keys never enter it.

After the kernel has signed and recorded a model, its whole memory
(``/proc/<pid>/mem``, every readable mapping) is searched for the private
scalars of the record and release keys, their PKCS#8 encodings and the
passphrase: none may be there.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from test_server_signing import PASSPHRASE, Server, _run, kernel_client, server
from test_server_vault import _drain

from securenb.core.workspace import Workspace

__all__ = ["server"]  # the module-scoped fixture of the server-signing tests

_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (r)")


def memory_contains(pid: int, needles: dict[str, bytes]) -> list[str]:
    """Names of the needles found in any readable mapping of process ``pid``."""
    found: set[str] = set()
    overlap = max(len(n) for n in needles.values())
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            match = _MAPPING.match(line)
            if not match or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = int(match.group(1), 16), int(match.group(2), 16)
            tail = b""
            for offset in range(start, end, 1 << 22):
                try:
                    mem.seek(offset)
                    chunk = tail + mem.read(min(1 << 22, end - offset))
                except OSError:
                    tail = b""
                    continue
                found |= {name for name, needle in needles.items() if needle in chunk}
                tail = chunk[-overlap:]
    return sorted(found)


def _secrets(root: Path) -> dict[str, bytes]:
    ws = Workspace(root)
    needles = {"passphrase": PASSPHRASE.encode()}
    for purpose in ("record", "release"):
        key = ws.keystore.load(ws.key_ref(purpose), PASSPHRASE).key
        scalar = key.private_numbers().private_value  # type: ignore[union-attr]
        needles[f"{purpose} key scalar"] = scalar.to_bytes(32, "big")
        needles[f"{purpose} key PKCS#8"] = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    return needles


def test_a_kernel_signs_through_the_server_without_the_keys(server: Server) -> None:
    with kernel_client(server) as (_, client):  # the kernel ends with the module's server
        _drain(client)
        out = _run(client, "import os\n"
                           "from securenb.kernel.sign_magics import register\n"
                           "register(get_ipython())\n"
                           f"os.chdir({str(server.root)!r})\n"
                           "%sign_model models/m\n"
                           "%verify_model models/m\n"
                           "print(os.getpid())\n")
        assert out[-1] == ("reply", {"status": "ok"}), out
        pid = int(next(c["text"] for kind, c in out if kind == "stream").split()[-1])
        needles = _secrets(server.root)
        assert memory_contains(pid, needles) == []
        # the search works: the same scan finds a value the kernel does hold
        _run(client, "marker = bytes.fromhex('5ec12e7b' * 8)")
        assert memory_contains(pid, {"marker": bytes.fromhex("5ec12e7b" * 8)}) == ["marker"]
