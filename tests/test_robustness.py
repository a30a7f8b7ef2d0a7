"""Robustness: FGSM/PGD accuracy measured in a real bwrap sandbox with weights_only loading;
the attestation, the policy floor and the gate rule."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from securenb.core.store import file_sha256
from securenb.core.workspace import Workspace
from securenb.gate import evaluate
from securenb.robustness import ROBUSTNESS_PREDICATE
from securenb.robustness.attacks import evaluate as attack

SECURENB = str(Path(sys.executable).parent / "securenb")
ARCH = '''
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x):
        return self.fc(x)
'''


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # type: ignore[no-any-return]


def _trained(folder: Path) -> tuple[Path, Path, Path, Net]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((300, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 1).astype("int64")
    net = Net()
    opt = torch.optim.Adam(net.parameters(), 0.05)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
    (folder / "arch.py").write_text(ARCH)
    torch.save(net.state_dict(), folder / "model.pt")
    np.savez(folder / "eval.npz", x=x, y=y)
    return folder / "model.pt", folder / "arch.py", folder / "eval.npz", net


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SECURENB, *args], capture_output=True, text=True, check=False,
                          cwd=cwd, timeout=300)


def test_attacks_lower_accuracy_and_pgd_is_no_weaker() -> None:
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.random((200, 4)).astype("float32"))
    y = (x[:, 0] + x[:, 1] > 1).long()
    net = Net()
    result = attack(net, x, y, epsilons=[0.0, 0.2], steps=10, alpha=None, clip=(0.0, 1.0))
    acc = {(a["attack"], a["epsilon"]): a["accuracy"] for a in result["attacks"]}
    assert acc[("fgsm", 0.0)] == pytest.approx(result["clean_accuracy"])
    assert acc[("pgd", 0.2)] <= acc[("fgsm", 0.2)] + 0.02
    assert acc[("fgsm", 0.2)] <= result["clean_accuracy"]


def test_cli_in_sandbox_records_and_gates(workspace: Workspace, tmp_path: Path) -> None:
    model, _, _, net = _trained(workspace.root)
    done = cli("robustness", "model.pt", "--arch", "arch.py:Net", "--data", "eval.npz",
               "--eps", "0.05", "--eps", "0.1", "--steps", "5", "--json", cwd=workspace.root)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    x, y = np.load(workspace.root / "eval.npz").values()
    with torch.no_grad():
        clean = float((net(torch.tensor(x)).argmax(-1) == torch.tensor(y)).float().mean())
    assert doc["cleanAccuracy"] == pytest.approx(clean)  # the sandbox evaluated this model
    assert doc["worstAccuracy"] < doc["cleanAccuracy"]
    digest = file_sha256(model)[0]
    assert workspace.store.attestations_for(digest, ROBUSTNESS_PREDICATE)
    (workspace.root / "securenb.toml").write_text("[gate]\nrequire_robustness = true\n"
                                                  "min_robust_accuracy = 0.1\n")
    rule = next(r for r in evaluate(Workspace(workspace.root), model, record=False).rules
                if r.rule == "robustness")
    assert rule.status == "pass"
    (workspace.root / "securenb.toml").write_text("[gate]\nrequire_robustness = true\n"
                                                  "min_robust_accuracy = 0.99\n")
    rule = next(r for r in evaluate(Workspace(workspace.root), model, record=False).rules
                if r.rule == "robustness")
    assert rule.status == "fail" and "< policy min_robust_accuracy 0.99" in rule.why
    done = cli("robustness", "model.pt", "--arch", "arch.py:Net", "--data", "eval.npz",
               "--eps", "0.1", "--no-record", cwd=workspace.root)
    assert done.returncode == 1 and "NOT met" in done.stdout


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {MARKER}",)


MARKER = "/tmp/securenb-robustness-exploded"


def test_malicious_model_is_refused_by_weights_only(tmp_path: Path) -> None:
    _, _, _, _ = _trained(tmp_path)
    Path(MARKER).unlink(missing_ok=True)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state": Payload()}))
    done = cli("robustness", "evil.pt", "--arch", "arch.py:Net", "--data", "eval.npz",
               "--eps", "0.1", cwd=tmp_path)
    assert done.returncode == 2
    assert "model refused by weights_only loading" in done.stderr
    assert not Path(MARKER).exists()


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    _trained(tmp_path)
    done = cli("robustness", "model.pt", "--arch", "arch.py", "--data", "eval.npz",
               "--eps", "0.1", cwd=tmp_path)
    assert done.returncode == 2 and "expected FILE.py:NAME" in done.stderr
    done = cli("robustness", "model.pt", "--arch", "arch.py:Net", "--data", "eval.npz",
               "--eps", "3", cwd=tmp_path)
    assert done.returncode == 2 and "epsilons must be in [0, 1]" in done.stderr


_SWAP = """
import os, sys
print("swapping", flush=True)
while True:  # model.pt is the trained model, then the untrained one, and so on
    for source in ("good.pt", "bad.pt"):
        os.link(source, ".next")
        os.replace(".next", "model.pt")
"""


def test_the_record_names_the_model_that_was_evaluated(workspace: Workspace) -> None:
    """Another process of the user swaps model.pt between a trained and an untrained
    model during the evaluation. On main the sandbox read the model when it loaded it
    and the host hashed it again to record it: the accuracy of one was signed on the
    other's digest (about one run in two)."""
    root = workspace.root
    _, _, data, net = _trained(root)
    os.replace(root / "model.pt", root / "good.pt")
    torch.manual_seed(1)
    untrained = Net()
    torch.save(untrained.state_dict(), root / "bad.pt")
    x, y = (torch.tensor(a) for a in np.load(data).values())
    with torch.no_grad():
        clean = {file_sha256(root / name)[0]: float((model(x).argmax(-1) == y).float().mean())
                 for name, model in (("good.pt", net), ("bad.pt", untrained))}
    assert len(set(clean.values())) == 2  # the two models are told apart by their accuracy
    os.link(root / "bad.pt", root / "model.pt")  # the swapper links the other first
    swapper = subprocess.Popen([sys.executable, "-c", _SWAP], cwd=root, stdout=subprocess.PIPE,
                               text=True)
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"
        runs = [cli("robustness", "model.pt", "--arch", "arch.py:Net", "--data", "eval.npz",
                    "--eps", "0.05", "--steps", "1", "--json", cwd=root) for _ in range(5)]
    finally:
        swapper.kill()
        swapper.wait()
    for done in runs:
        assert done.returncode in (0, 1), done.stderr
        doc = json.loads(done.stdout)
        _, statement = workspace.load_attestation(doc["attestation"].removeprefix("sha256:"))
        named = statement["predicate"]["model"].removeprefix("sha256:")
        assert named in clean and doc["cleanAccuracy"] == pytest.approx(clean[named]), doc
