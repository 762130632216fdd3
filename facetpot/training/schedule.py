"""Learning-rate schedules: linear warm-up, then cosine decay to min_lr_ratio, a plateau rule, or constant.

With a wall-time budget the cosine's progress is the larger of the step fraction and the time
fraction, so a run stopped by ``max_time_minutes`` still ends annealed."""

from __future__ import annotations

import math
from typing import Dict


class LRSchedule:
    def __init__(
        self,
        optimizer,
        kind: str,
        base_lr: float,
        total_steps: int,
        warmup_steps: int,
        min_lr_ratio: float,
        patience: int = 5,
        factor: float = 0.5,
    ):
        self.opt, self.kind = optimizer, kind
        self.base_lr, self.total, self.warmup = float(base_lr), max(int(total_steps), 1), int(warmup_steps)
        self.min_ratio, self.patience, self.factor = float(min_lr_ratio), int(patience), float(factor)
        self.step_count = 0
        self.time_fraction = 0.0  # with a wall-time budget, cosine follows whichever runs out first
        self.plateau_scale, self.best, self.bad = 1.0, math.inf, 0
        self._apply()

    def lr(self) -> float:
        t = self.step_count
        warm = min(1.0, (t + 1) / self.warmup) if self.warmup > 0 else 1.0
        if self.kind == "cosine":
            prog = min(1.0, max(0.0, (t - self.warmup) / max(1, self.total - self.warmup), self.time_fraction))
            f = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * prog))
        elif self.kind == "plateau":
            f = max(self.plateau_scale, self.min_ratio)
        else:
            f = 1.0
        return self.base_lr * warm * f

    def progress(self) -> float:
        """Fraction of the run done: steps or wall-time budget, whichever is further."""
        return min(1.0, max(self.step_count / self.total, self.time_fraction))

    def _apply(self) -> None:
        for g in self.opt.param_groups:
            g["lr"] = self.lr()

    def step(self, time_fraction: float = 0.0) -> None:
        self.step_count += 1
        self.time_fraction = max(self.time_fraction, float(time_fraction))
        self._apply()

    def report(self, metric: float) -> None:
        """Plateau rule: scale the rate by ``factor`` after ``patience`` validations without improvement."""
        if metric < self.best * (1 - 1e-4):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                self.plateau_scale *= self.factor
                self.bad = 0
        self._apply()

    def state_dict(self) -> Dict:
        return {k: getattr(self, k) for k in ("step_count", "time_fraction", "plateau_scale", "best", "bad")}

    def load_state_dict(self, state: Dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._apply()
