"""Run the robustness evaluation in a bwrap sandbox and read back its result as data.

The model file, the architecture source and the evaluation data are copied once
into private, unnamed files (securenb.scan.snapshot), hashed as they are copied,
and handed to the sandbox read-only from those copies: the result names the
digests of the bytes evaluated, whatever happens to the files meanwhile. The
sandbox writes one JSON file to its output folder, which the host reads with
``O_NOFOLLOW`` and a size limit and validates before use. Policy ``[isolation]``
limits apply; there is no unsandboxed fallback.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from securenb.core.policy import IsolationPolicy
from securenb.errors import SecurenbError, at
from securenb.scan.snapshot import private_copy

_MAX_RESULT = 1 << 20
_INPUTS = "/run/securenb/inputs"  # in the sandbox: the private copies, read-only


@dataclass(frozen=True)
class RobustnessResult:
    """Accuracy, clean and under each attack, on ``samples`` evaluation examples."""

    samples: int
    clean_accuracy: float
    attacks: tuple[dict[str, Any], ...]
    steps: int
    clip: tuple[float, float]
    model_sha256: str = ""
    """Of the bytes evaluated (set by :func:`evaluate_in_sandbox`)."""
    data_sha256: str = ""

    @property
    def worst(self) -> float:
        """The lowest accuracy under any attack (what a policy floor is compared with)."""
        return min((a["accuracy"] for a in self.attacks), default=self.clean_accuracy)

    def to_predicate(self, model: str, data: dict[str, str]) -> dict[str, Any]:
        return {"model": model, "data": data, "samples": self.samples,
                "cleanAccuracy": self.clean_accuracy, "worstAccuracy": self.worst,
                "norm": "Linf", "pgdSteps": self.steps, "clip": list(self.clip),
                "attacks": list(self.attacks), "loading": "torch.load(weights_only=True)",
                "sandbox": "bwrap"}

    def to_text(self) -> str:
        lines = [f"robustness on {self.samples} examples: clean accuracy "
                 f"{self.clean_accuracy:.3f}, worst under attack {self.worst:.3f}"]
        lines += [f"  {a['attack'].upper():<5} eps={a['epsilon']:<8g} accuracy {a['accuracy']:.3f}"
                  for a in self.attacks]
        return "\n".join(lines)


def evaluate_in_sandbox(policy: IsolationPolicy, model: Path, architecture: str, data: Path,
                        *, epsilons: list[float], steps: int = 10, alpha: float | None = None,
                        clip: tuple[float, float] = (0.0, 1.0), seed: int = 0
                        ) -> RobustnessResult:
    """FGSM/PGD accuracy of ``model`` (a state dict) with ``architecture`` (``FILE:NAME``)."""
    from securenb.isolation import bwrap
    from securenb.isolation.runtime import RuntimeDir, dedicated_uid
    from securenb.isolation.spec import build_spec

    arch_file, sep, arch_name = architecture.rpartition(":")
    if not sep or not arch_name.isidentifier() or not Path(arch_file).is_file():
        raise SecurenbError(f"--arch {architecture!r}: expected FILE.py:NAME of an nn.Module "
                            "class or factory")
    for path in (model, data):
        if not path.is_file():
            raise SecurenbError(at(path, "no such file"))
    if not epsilons or any(not (0 <= e <= 1) for e in epsilons) or steps < 1:
        raise SecurenbError("epsilons must be in [0, 1] and steps >= 1")
    with tempfile.TemporaryDirectory(prefix="securenb-robustness-") as tmp, \
            ExitStack() as copies:
        work, out = Path(tmp) / "work", Path(tmp) / "out"
        work.mkdir()
        spec = build_spec(policy, workdir=work, backend="bwrap", inputs=(), output_dir=out)
        files = {name: _private(copies, path) for name, path in
                 (("model", model), ("arch.py", Path(arch_file)), ("data", data))}
        config = {"model": f"{_INPUTS}/model", "architecture": f"{_INPUTS}/arch.py:{arch_name}",
                  "data": f"{_INPUTS}/data", "epsilons": epsilons, "steps": steps,
                  "alpha": alpha, "clip": list(clip), "seed": seed, "output": spec.output_dir}
        # root never runs the sandbox as root: an unprivileged uid of its own owns the outbox
        runtime = RuntimeDir.create(owner=dedicated_uid() if os.geteuid() == 0 else None)
        launch = bwrap.build(spec, runtime, [spec.python.executable, "-m",
                                             "securenb.robustness._worker", json.dumps(config)],
                             {}, [(fd, f"{_INPUTS}/{name}") for name, (fd, _) in files.items()])
        try:
            done = subprocess.run(launch.argv, pass_fds=launch.pass_fds, capture_output=True,
                                  text=True, timeout=spec.limits.timeout_seconds, check=False,
                                  cwd=runtime.path, env={"PATH": os.environ.get("PATH", "")})
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
                raise SecurenbError(f"robustness evaluation failed in the sandbox "
                                    f"(exit {done.returncode}): {last}")
            # the sandbox writes into the runtime's outbox (bound at the output folder)
            return replace(_read(runtime.outbox / "robustness.json", steps, clip),
                           model_sha256=files["model"][1], data_sha256=files["data"][1])
        except subprocess.TimeoutExpired:
            raise SecurenbError(f"robustness evaluation exceeded {spec.limits.timeout_seconds} s "
                                "(policy [isolation] timeout)") from None
        finally:
            launch.close_fds()
            if launch.cgroup is not None:
                launch.cgroup.remove()
            runtime.remove()


def _private(stack: ExitStack, path: Path) -> tuple[int, str]:
    """The fd and SHA-256 of a private copy of ``path``, open until ``stack`` closes."""
    try:
        fh = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - closed by the stack
    except OSError as exc:
        raise SecurenbError(at(path, f"cannot read ({exc.strerror})")) from None
    copy, digest, _ = stack.enter_context(private_copy(fh, path))
    return copy.fileno(), digest


def _read(path: Path, steps: int, clip: tuple[float, float]) -> RobustnessResult:
    """The sandbox's result: a regular file (no link), bounded, every number checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SecurenbError(at(path, f"the sandbox wrote no result ({exc.strerror})")) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SecurenbError(at(path, "the sandbox's result is not a regular file"))
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(_MAX_RESULT + 1)
    if len(raw) > _MAX_RESULT:
        raise SecurenbError(at(path, "result larger than 1 MiB"))
    try:
        data = json.loads(raw)
        samples = int(data["samples"])
        clean = _fraction(data["clean_accuracy"])
        attacks = tuple({"attack": str(a["attack"]), "epsilon": float(a["epsilon"]),
                         "accuracy": _fraction(a["accuracy"])} for a in data["attacks"])
        if any(a["attack"] not in ("fgsm", "pgd") for a in attacks) or samples < 1:
            raise ValueError("unexpected attack or sample count")
    except (ValueError, KeyError, TypeError) as exc:
        raise SecurenbError(at(path, f"malformed result from the sandbox ({exc})")) from None
    return RobustnessResult(samples, clean, attacks, steps, clip)


def _fraction(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError(f"accuracy {value!r} not in [0, 1]")
    return number
