"""The trust section of the policy: validation, identity matching, key entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from securenb.core.keys import PrivateKey
from securenb.core.policy import Identity, load_policy
from securenb.errors import PolicyError
from securenb.signing.trust import Trust


def _policy(tmp_path: Path, text: str) -> Trust:
    (tmp_path / "securenb.toml").write_text(text)
    policy, source = load_policy(tmp_path)
    return Trust(policy.trust, tmp_path, source=str(source))


@pytest.mark.parametrize(("text", "message"), [
    ('[[trust.identities]]\nissuer = "i"\n',
     r"trust.identities.0': Value error, give exactly one of 'subject' or 'subject_regex'"),
    ('[[trust.identities]]\nissuer = "i"\nsubject = "a"\nsubject_regex = "a"\n',
     r"give exactly one of 'subject' or 'subject_regex'"),
    ('[[trust.identities]]\nissuer_regex = "("\nsubject = "a"\n',
     r"'issuer_regex' is not a regular expression"),
    ('[[trust.certificate_roots]]\nroots = []\nidentities = []\n',
     r"trust.certificate_roots.0.roots'"),
    ('[trust]\nkeyz = []\n', r"unknown key 'trust.keyz' \(did you mean 'keys'\?\)"),
])
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _policy(tmp_path, text)


def test_regular_expressions_match_whole_values() -> None:
    identity = Identity(issuer="https://accounts.google.com", subject_regex=r".*@example\.com")
    assert identity.matches("https://accounts.google.com", ["ml@example.com"])
    assert not identity.matches("https://accounts.google.com", ["ml@example.com.evil.net"])
    assert not identity.matches("https://evil.example", ["ml@example.com"])
    assert not identity.matches(None, ["ml@example.com"])
    assert identity.describe() == r"/.*@example\.com/ (issuer https://accounts.google.com)"


def test_key_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_path, by_env, by_id = (PrivateKey.generate() for _ in range(3))
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pub").write_bytes(by_path.public.pem())
    monkeypatch.setenv("RELEASE_PUB", by_env.public.pem().decode())
    trust = _policy(tmp_path, f'[trust]\nkeys = ["keys/release.pub", "env:RELEASE_PUB", '
                              f'"sha256:{by_id.key_id}"]\n')
    assert [k.trusted for k in trust.keys] == ["listed in trust.keys (keys/release.pub)",
                                               "listed in trust.keys (env:RELEASE_PUB)"]
    with_material = Trust(trust.policy, tmp_path, source="p", extra_keys=[(by_id.public, "cli")])
    assert with_material.key_by_id(by_id.key_id) is not None
    assert with_material.key_by_id(by_id.key_id).trusted == (  # type: ignore[union-attr]
        f"key id listed in trust.keys (sha256:{by_id.key_id})")


def test_missing_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"trust.keys entry 'gone.pub': No such file"):
        _policy(tmp_path, '[trust]\nkeys = ["gone.pub"]\n')
    trust = _policy(tmp_path, '[[trust.certificate_roots]]\nroots = ["ca.pem"]\n'
                              'identities = [{ issuer = "i", subject = "s" }]\n'
                              '[trust]\nsigstore_trusted_root = "root.json"\n')
    with pytest.raises(PolicyError, match=r"trust.certificate_roots\[0\]: .*ca.pem is missing"):
        trust.authorities  # noqa: B018 - a property that loads
    with pytest.raises(PolicyError, match=r"trust.sigstore_trusted_root: .*root.json is missing"):
        trust.sigstore_trusted_root()


def test_policy_can_keep_keys_out_of_every_kernel(
    workspace: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[signing] in_kernel = false: with no securenb server, %sign_model refuses."""
    from IPython.core.error import UsageError

    from securenb.kernel.sign_magics import sign_model

    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    (tmp_path / "securenb.toml").write_text("[signing]\nin_kernel = false\n")
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    with pytest.raises(UsageError, match="in_kernel = false: keys never enter a kernel"):
        sign_model(str(model))
    assert not (tmp_path / "model.bin.sig").exists()


def test_key_unlocked_early_is_used_only_if_the_validated_policy_names_it(
    workspace: Any, tmp_path: Path, passphrase: str
) -> None:
    """securenb.signing.unlock pre-reads the policy to save memory; it must never decide."""
    from securenb.core.workspace import Workspace
    from securenb.signing.unlock import adopt, unlock_policy_key

    workspace.keystore.create("other", passphrase=passphrase)
    unlocked = unlock_policy_key(tmp_path)  # no policy file: the default release key
    assert unlocked is not None and unlocked.name == "release"

    (tmp_path / "securenb.toml").write_text('[signing]\nkey = "other"\n')
    fresh = Workspace(tmp_path)
    assert not adopt(fresh, unlocked)
    assert fresh.purpose_signer("release").key_id == fresh.keystore.public("other").key_id

    # an invalid policy: whatever the pre-read unlocked, adopting it validates and fails
    (tmp_path / "securenb.toml").write_text('[signing]\nkye = "other"\n')
    with pytest.raises(PolicyError, match=r"unknown key 'signing\.kye'"):
        adopt(Workspace(tmp_path), unlock_policy_key(tmp_path))
