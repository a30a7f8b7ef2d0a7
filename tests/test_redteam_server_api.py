"""Red team: the REST API and the kernel socket against hostile requests.

JSON nested deeper than CPython's parser recurses, sent to every JSON reader.

A 40 kB body of nested arrays is under every size limit, yet ``json.loads``
raises ``RecursionError``, which the readers did not expect: the REST API
answered 500 with a traceback in the server log, the kernel signer socket the
same, and `securenb verify` printed a raw traceback. Bad input gets a clear
error naming the problem (400 / exit 2), never a 5xx or a traceback.

Real jupyter server (the module-scoped ``server`` of the server-signing tests),
its kernel socket with a real kernel's key, the real CLI.
"""

from __future__ import annotations

import http.cookiejar
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redteam_support import configured_server
from test_server_signing import TOKEN, Server, server

from securenb.signing.remote import (
    HEADER_KERNEL,
    HEADER_MAC,
    HEADER_NONCE,
    HEADER_TIME,
    KernelIdentity,
    _UnixConnection,
    request_mac,
)

__all__ = ["server"]  # the module-scoped fixture of the server-signing tests (default limits)


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose write rate limit these many probes cannot reach."""
    config = {"SecurenbExtension": {"write_rate": 1e6, "write_burst": 1_000_000}}
    with configured_server(tmp_path_factory.mktemp("roomy"), config) as srv:
        yield srv


DEEP = "[" * 20_000 + "]" * 20_000


@pytest.mark.parametrize("endpoint", ["sign", "verify", "scan", "gate"])
def test_rest_api_answers_deep_json_with_a_400(roomy: Server, endpoint: str) -> None:
    for body in (DEEP, '{"path": ' + DEEP + "}"):
        request = urllib.request.Request(
            f"{roomy.url}/securenb/api/{endpoint}", data=body.encode(), method="POST",
            headers={"Authorization": f"token {TOKEN}"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=60)
        assert info.value.code == 400, info.value.read()
        assert "JSON" in json.loads(info.value.read())["error"]


def test_kernel_socket_answers_deep_json_with_a_400(roomy: Server) -> None:
    discovery = json.loads((roomy.runtime / f"securenb-signer-{roomy.pid}.json").read_text())
    kernel_id = roomy.call("POST", "/api/kernels", {"name": "python3"})["id"]
    key = KernelIdentity.from_connection_file(roomy.runtime / f"kernel-{kernel_id}.json").key
    body = ('{"path": ' + DEEP + "}").encode()
    stamp, nonce = str(int(time.time())), "deep-json-nonce-0001"
    connection = _UnixConnection(discovery["socket"], 60)
    connection.request("POST", "/v1/verify", body=body, headers={
        HEADER_KERNEL: kernel_id, HEADER_TIME: stamp, HEADER_NONCE: nonce,
        HEADER_MAC: request_mac(key, kernel_id, "/v1/verify", stamp, nonce, body)})
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    assert response.status == 400, answer
    assert "malformed request" in json.loads(answer)["error"]


def test_verify_of_a_deep_notebook_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.ipynb"
    path.write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {"x": '
                    + DEEP + "}}")
    _public_key(tmp_path / "signer.pub")
    proc = subprocess.run([str(Path(sys.executable).parent / "securenb"), "verify", str(path),
                           "--key", str(tmp_path / "signer.pub")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, \
        proc.stderr
    assert "invalid JSON" in proc.stderr or "nested" in proc.stderr


def _deep_attestation(folder: Path) -> Path:
    path = folder / "run.intoto.json"
    path.write_text('{"payloadType": "x", "payload": "", "signatures": ' + DEEP + "}")
    return path


def _deep_model_signature(folder: Path) -> Path:
    path = folder / "model.bin"
    path.write_bytes(b"weights")
    (folder / "model.bin.sig").write_text('{"mediaType": ' + DEEP + "}")
    return path


@pytest.mark.parametrize("make", [_deep_attestation, _deep_model_signature],
                         ids=["attestation", "model-signature"])
def test_verify_of_other_deep_json_files_is_a_one_line_error(tmp_path: Path, make: object
                                                             ) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    _public_key(tmp_path / "signer.pub")
    proc = subprocess.run([str(Path(sys.executable).parent / "securenb"), "verify", str(target),
                           "--key", str(tmp_path / "signer.pub")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr[-300:]
    if make is _deep_model_signature:  # as any corrupt signature: checked, and it fails
        assert proc.returncode == 1
        assert "not a Sigstore bundle (edited or corrupt: maximum recursion" in proc.stdout
    else:
        assert proc.returncode == 2 and proc.stderr.startswith("error: ")


def _public_key(path: Path) -> None:
    """A signer's public key (SPKI PEM): what a recipient verifies with."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo))


def test_cookie_logins_need_the_xsrf_token_on_every_write(roomy: Server) -> None:
    """A page elsewhere can make the browser POST with the login cookie, never the token."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    browser.open(roomy.url + "/login", timeout=60).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    browser.open(urllib.request.Request(
        roomy.url + "/login", method="POST",
        data=urllib.parse.urlencode({"password": TOKEN, "_xsrf": xsrf}).encode()), timeout=60)
    for endpoint in ("sign", "verify", "scan", "gate", "audit/verify"):
        request = urllib.request.Request(f"{roomy.url}/securenb/api/{endpoint}", method="POST",
                                         data=json.dumps({"path": "models/m"}).encode())
        with pytest.raises(urllib.error.HTTPError) as info:
            browser.open(request, timeout=60)
        assert info.value.code == 403, endpoint
        assert "_xsrf" in json.loads(info.value.read())["error"]


@pytest.mark.parametrize("path", ["../outside.json", "/etc/hostname", "~/x", "escape/hostname",
                                  "link.json", "models/../../outside.json"])
@pytest.mark.parametrize("endpoint", ["sign", "verify", "scan", "gate", "artifacts/by-path"])
def test_no_endpoint_reaches_outside_the_root(roomy: Server, endpoint: str, path: str) -> None:
    (roomy.root.parent / "outside.json").write_text("{}")
    for name, target in (("escape", "/etc"), ("link.json", "/etc/hostname")):
        if not (roomy.root / name).is_symlink():
            (roomy.root / name).symlink_to(target)
    if endpoint == "artifacts/by-path":
        query = urllib.parse.urlencode({"path": path})
        request = urllib.request.Request(f"{roomy.url}/securenb/api/{endpoint}?{query}",
                                         headers={"Authorization": f"token {TOKEN}"})
    else:
        request = urllib.request.Request(
            f"{roomy.url}/securenb/api/{endpoint}", method="POST",
            data=json.dumps({"path": path}).encode(),
            headers={"Authorization": f"token {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 400, info.value.read()
    assert "outside the server's root folder" in json.loads(info.value.read())["error"]


@pytest.mark.parametrize(("endpoint", "field"), [
    ("sign", "signature"), ("sign", "certificate"), ("sign", "chain"), ("verify", "signature")])
def test_secondary_paths_stay_inside_the_root_too(roomy: Server, endpoint: str,
                                                  field: str) -> None:
    """The signature a sign request writes, and every file it or a verify reads."""
    outside = str(roomy.root.parent / "planted.sig")
    body = {"path": "models/m", field: [outside] if field == "chain" else outside}
    request = urllib.request.Request(f"{roomy.url}/securenb/api/{endpoint}", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": f"token {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 400
    assert "outside the server's root folder" in json.loads(info.value.read())["error"]
    assert not Path(outside).exists()


def test_token_clients_are_rate_limited_too(server: Server) -> None:
    codes = []
    began = time.monotonic()
    for _ in range(60):  # three times the burst; each is refused at once (outside the root)
        request = urllib.request.Request(
            f"{server.url}/securenb/api/verify", method="POST",
            data=json.dumps({"path": "/etc/hostname"}).encode(),
            headers={"Authorization": f"token {TOKEN}"})
        try:
            urllib.request.urlopen(request, timeout=60).close()
        except urllib.error.HTTPError as exc:
            codes.append(exc.code)
    elapsed = time.monotonic() - began
    assert elapsed < 6, "too slow to exceed 20 + 5/s: the check would prove nothing"
    assert 429 in codes, codes
