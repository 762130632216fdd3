"""Exponential moving average of parameters: theta_ema <- d theta_ema + (1 - d) theta,
with d = min(decay, (1 + t) / (10 + t)) so early steps are not dominated by the initial weights."""

from __future__ import annotations

from typing import Dict

import torch


class ParameterEMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.steps = 0
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for n, p in model.named_parameters():
            self.shadow[n].mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def swap(self, model: torch.nn.Module) -> None:
        """Exchange model parameters and EMA parameters (call twice to restore)."""
        for n, p in model.named_parameters():
            tmp = p.detach().clone()
            p.copy_(self.shadow[n])
            self.shadow[n].copy_(tmp)

    def state_dict(self) -> Dict:
        return {"decay": self.decay, "steps": self.steps, "shadow": self.shadow}

    def load_state_dict(self, state: Dict) -> None:
        self.decay, self.steps = float(state["decay"]), int(state["steps"])
        for n, t in state["shadow"].items():
            self.shadow[n].copy_(t)
