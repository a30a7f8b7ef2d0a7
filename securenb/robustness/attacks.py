"""FGSM and PGD (L-infinity) accuracy of a torch classifier: runs inside the sandbox.

Standard definitions (Goodfellow et al. 2015; Madry et al. 2018): FGSM takes
one step of size epsilon along the sign of the loss gradient; PGD takes
``steps`` steps of size ``alpha`` from a random start in the epsilon-ball,
projecting back after each, inputs clipped to ``[clip_min, clip_max]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _loss_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
         clip: tuple[float, float]) -> torch.Tensor:
    return (x + eps * _loss_grad(model, x, y).sign()).clamp(*clip).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
        steps: int, clip: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    noise = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps
    adv = (x + noise).clamp(*clip)
    for _ in range(steps):
        adv = adv + alpha * _loss_grad(model, adv, y).sign()
        adv = torch.max(torch.min(adv, x + eps), x - eps).clamp(*clip).detach()
    return adv


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        return int((model(x).argmax(-1) == y).sum())


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilons: list[float],
             steps: int, alpha: float | None, clip: tuple[float, float], batch: int = 256,
             seed: int = 0) -> dict[str, Any]:
    """Clean accuracy, and accuracy under FGSM and PGD at each epsilon."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    clean = 0
    under: dict[str, list[int]] = {f"{a}@{e}": [0] for a in ("fgsm", "pgd") for e in epsilons}
    for start in range(0, len(x), batch):
        xb, yb = x[start:start + batch], y[start:start + batch]
        clean += _correct(model, xb, yb)
        for eps in epsilons:
            under[f"fgsm@{eps}"][0] += _correct(model, fgsm(model, xb, yb, eps, clip), yb)
            step = alpha if alpha is not None else 2.5 * eps / max(steps, 1)
            adv = pgd(model, xb, yb, eps, step, steps, clip, generator)
            under[f"pgd@{eps}"][0] += _correct(model, adv, yb)
    n = len(x)
    attacks = [{"attack": key.split("@")[0], "epsilon": float(key.split("@")[1]),
                "accuracy": count[0] / n} for key, count in under.items()]
    return {"samples": n, "clean_accuracy": clean / n, "attacks": attacks}
