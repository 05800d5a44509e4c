"""Lagrangian PPO: constrained RL on the environments' toxicity cost, without forking SB3.

The constrained problem is: maximise the expected return (QALYs) subject to the expected
episode cost — new grade ≥ 3 toxicities per patient-episode, ``info["cost"]`` added up
(:meth:`OncologyFunctional.cost <oncogym.envs.functional.OncologyFunctional.cost>`) — at
most a budget ``d`` (by default the scenario's standard of care's,
:class:`oncogym.scenarios.CostBudget`).  Its Lagrangian relaxation
``max_π min_{λ≥0} J_R(π) − λ (J_C(π) − d)`` is solved by alternating:

* **primal**: PPO, unchanged, on the reward ``r − λ·c`` (:class:`CostPenalty`, a
  ``VecEnvWrapper`` that subtracts the current λ times each step's cost, placed below
  ``VecNormalize``, so the penalised reward is what gets normalised);
* **dual**: after every rollout, ``λ ← max(0, λ + η (Ĵ_C − d))`` (:func:`dual_update`,
  :class:`LagrangianCallback`), where ``η`` is ``lambda_lr`` and ``Ĵ_C`` is, with
  ``dual_cost: training``, the mean cost of the training episodes that ended in that
  rollout (the episodes' undiscounted cost; a rollout in which none ended leaves λ
  unchanged), or, with ``dual_cost: validation``, the grade ≥ 3 events per patient of the
  current policy acting *deterministically* on validation patients of the training
  distribution — the policy as it is evaluated and deployed.  λ rises while the policy
  exceeds the budget and falls back towards 0 (never below) while it stays under it.

  Why the second: the training episodes are those of the stochastic policy, which keeps
  exploring for the whole budget of steps.  In melanoma one ipilimumab dose sampled in any
  of 104 weekly decisions can start a grade ≥ 3 immune-related event, so the training
  episodes' cost stayed near 0.4 events whatever the policy learned (with λ held at 10 the
  deterministic policy's was 0.07 while its training episodes' stayed at 0.37–0.47): dual
  ascent on the training cost drove λ up without bound (0 → 4.4 in 25 updates at
  ``lambda_lr`` 1) and the constraint it enforced was the exploration's, not the policy's.

λ is in QALYs per event (the reward's unit per cost unit).  Its value after each update is
logged (``lagrangian/lambda``, ``lagrangian/ep_cost_mean``, ``lagrangian/cost_budget``,
``lagrangian/episodes``), appended to ``lagrangian.json`` in the run folder (from which a
resumed run continues) and summarised in ``metadata.json``.

OmniSafe and safety-gymnasium were checked first (``pip install --dry-run``):
safety-gymnasium 1.0.0 pins ``gymnasium==0.28.1`` (and ``pygame==2.1.0``, which does not
build here), and OmniSafe 0.5.0 requires safety-gymnasium and ``pandas==2.0.3``; neither
installs beside gymnasium 1.x, so the Lagrangian is this small module.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

HISTORY_FILE = "lagrangian.json"
"""The run folder's record of λ after every update."""


def dual_update(lam: float, mean_cost: float, budget: float, lr: float) -> float:
    """One projected dual-ascent step: ``max(0, lam + lr * (mean_cost - budget))``."""
    return max(0.0, float(lam) + float(lr) * (float(mean_cost) - float(budget)))


def check_budget(value: Any, name: str = "cost_budget") -> float:
    """``value`` as a budget (a finite number >= 0), or :class:`ValueError` naming ``name``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"{name}: expected a number >= 0 of grade >= 3 events per patient-episode, "
            f"got {value!r}"
        )
    return float(value)


def scenario_budget(task: str) -> float:
    """The ``cost_budget.events`` of scenario ``task`` (:class:`ValueError` if it has none)."""
    from oncogym.scenarios import available_scenarios, load_scenario

    if task not in available_scenarios():
        raise ValueError(
            f"cost_budget: {task} is not a scenario and has no default budget; give one "
            "(--cost-budget, a number >= 0 of grade >= 3 events per patient-episode)"
        )
    budget = load_scenario(task).cost_budget
    if budget is None:
        raise ValueError(
            f"cost_budget: scenario {task} has no cost_budget; give one (--cost-budget, a "
            "number >= 0 of grade >= 3 events per patient-episode)"
        )
    return float(budget.events)


class CostPenalty(VecEnvWrapper):
    """Rewards ``r − λ·cost`` from each step's ``infos[i]["cost"]``; episode costs kept.

    :param venv: a ``VecEnv`` whose infos carry ``"cost"`` (:class:`oncogym.envs.SB3VecEnv`,
        possibly under ``VecMonitor``)
    :param lam: the initial λ (set :attr:`lam` to change it)

    The cost of every finished episode is added to :attr:`episode_costs` (read and
    cleared by :meth:`pop_episode_costs`) and to that step's ``infos[i]["episode_cost"]``.
    """

    def __init__(self, venv: VecEnv, lam: float = 0.0) -> None:
        super().__init__(venv)
        if (
            isinstance(lam, bool)
            or not isinstance(lam, int | float)
            or not math.isfinite(lam)
            or lam < 0
        ):
            raise ValueError(f"lam: expected a number >= 0 (QALYs per event), got {lam!r}")
        self.lam = float(lam)
        self._running = np.zeros(self.num_envs)
        self.episode_costs: list[float] = []

    def reset(self) -> Any:
        self._running[:] = 0.0
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        try:
            cost = np.fromiter((info["cost"] for info in infos), dtype=np.float64, count=len(infos))
        except KeyError:
            raise ValueError(
                "CostPenalty: the env's infos have no 'cost' (use oncogym.envs.SB3VecEnv)"
            ) from None
        self._running += cost
        for i in np.flatnonzero(dones):
            self.episode_costs.append(float(self._running[i]))
            infos[i]["episode_cost"] = float(self._running[i])
            self._running[i] = 0.0
        penalised = (rewards - self.lam * cost).astype(rewards.dtype, copy=False)
        return obs, penalised, dones, infos

    def pop_episode_costs(self) -> list[float]:
        """The costs of the episodes finished since the last call."""
        out, self.episode_costs = self.episode_costs, []
        return out


def find_penalty(venv: Any) -> CostPenalty:
    """The :class:`CostPenalty` in a stack of ``VecEnvWrapper``."""
    inner = venv
    while inner is not None:
        if isinstance(inner, CostPenalty):
            return inner
        inner = getattr(inner, "venv", None)
    raise ValueError("venv: no CostPenalty wrapper in the training env")


def read_record(run_dir: Path) -> dict[str, Any]:
    """The run's ``lagrangian.json`` (settings and ``updates``; ``{}`` when absent)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def lambda_at(history: Sequence[dict[str, float]], timesteps: int, default: float) -> float:
    """λ of the last update at or before ``timesteps`` (``default`` when there is none)."""
    lam = default
    for row in history:
        if row["timesteps"] <= timesteps:
            lam = row["lambda"]
    return float(lam)


class LagrangianCallback(BaseCallback):
    """The dual update after every rollout (see the module docstring).

    :param penalty: the training env's :class:`CostPenalty` (its λ is updated in place)
    :param cost_budget: ``d``, events per patient-episode
    :param lambda_lr: ``η``
    :param run_dir: where ``lagrangian.json`` is written (None: nowhere)
    :param history: earlier updates (a resumed run's), kept in front of the new ones
    :param validation_cost: ``dual_cost: validation``: returns the current policy's cost
        on validation patients (deterministic), used instead of the training episodes'
    """

    def __init__(
        self,
        penalty: CostPenalty,
        *,
        cost_budget: float,
        lambda_lr: float,
        run_dir: Path | None = None,
        history: Sequence[dict[str, float]] = (),
        settings: dict[str, Any] | None = None,
        validation_cost: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.validation_cost = validation_cost
        self.penalty = penalty
        self.cost_budget = check_budget(cost_budget)
        if not (isinstance(lambda_lr, int | float) and lambda_lr > 0 and math.isfinite(lambda_lr)):
            raise ValueError(f"lambda_lr: expected a number > 0, got {lambda_lr!r}")
        self.lambda_lr = float(lambda_lr)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.history: list[dict[str, float]] = [dict(r) for r in history]
        self.settings = dict(settings or {})

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        costs = self.penalty.pop_episode_costs()
        before = self.penalty.lam
        mean = float(np.mean(costs)) if costs else math.nan
        dual = self.validation_cost() if self.validation_cost is not None else mean
        if not math.isnan(dual):
            self.penalty.lam = dual_update(before, dual, self.cost_budget, self.lambda_lr)
        row = {
            "timesteps": int(self.num_timesteps),
            "lambda": self.penalty.lam,
            "ep_cost_mean": mean,
            "episodes": len(costs),
        }
        if self.validation_cost is not None:
            row["validation_cost"] = dual
            self.logger.record("lagrangian/validation_cost", dual)
        self.history.append(row)
        self.logger.record("lagrangian/lambda", self.penalty.lam)
        self.logger.record("lagrangian/ep_cost_mean", mean)
        self.logger.record("lagrangian/cost_budget", self.cost_budget)
        self.logger.record("lagrangian/episodes", len(costs))
        if self.run_dir is not None:
            self.write()

    def write(self) -> None:
        """Write ``lagrangian.json`` (settings and every update; NaN as null)."""
        assert self.run_dir is not None
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in self.history
        ]
        data = {**self.settings, "cost_budget": self.cost_budget, "lambda_lr": self.lambda_lr}
        data["updates"] = rows
        path = self.run_dir / HISTORY_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)

    def summary(self) -> dict[str, Any]:
        """What ``metadata.json`` keeps: the settings, the final λ and the last costs."""
        costs = [r["ep_cost_mean"] for r in self.history if r["episodes"]]
        validation = [r["validation_cost"] for r in self.history if "validation_cost" in r]
        return {
            **self.settings,
            "cost_budget": self.cost_budget,
            "lambda_lr": self.lambda_lr,
            "lambda_final": self.penalty.lam,
            "lambda_max": max((r["lambda"] for r in self.history), default=self.penalty.lam),
            "updates": len(self.history),
            "ep_cost_last": costs[-1] if costs else None,
            "validation_cost_last": validation[-1] if validation else None,
            "history_file": HISTORY_FILE,
        }


__all__ = [
    "CostPenalty",
    "LagrangianCallback",
    "check_budget",
    "dual_update",
    "find_penalty",
    "lambda_at",
    "read_record",
    "scenario_budget",
]
