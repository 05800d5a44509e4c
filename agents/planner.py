"""Model-predictive planner: cross-entropy search over dose schedules on the batched core.

:class:`MPCPlanner` chooses each clinic visit's doses by simulating candidate schedules
with the environment's own compiled transition (:func:`oncogym.envs.functional.transition`)
— so clinical constraints, toxicity, death and the reward are exactly the environment's —
and keeping the first step of the best schedule found (receding horizon).

Search (cross-entropy method, CEM)
    A schedule is ``horizon_steps`` decision intervals × one dose *level* per therapy (the
    task's ``level_table``; level 0 = no dose).  Per patient, per step and per therapy CEM
    keeps a categorical distribution over the levels; each of ``n_iters`` iterations draws
    ``n_samples`` schedules, simulates them, and moves the distribution towards the
    ``n_elite`` best (smoothing 0.7).  The first iteration also tries three anchor schedules
    (the previous plan shifted by the steps since, no treatment, the highest level of
    everything) — and, given ``anchor``, a fixed schedule from the current step on (the
    best open-loop schedule: the benchmark's ceiling starts from it) — and later iterations
    keep the best schedule so far (elitism).  While
    simulating, a level the constraints forbid at that step
    (:func:`~oncogym.envs.functional.action_masks` of the simulated state) is replaced by
    level 0, so the statistics describe what would really be given; the action returned is
    the first step of the best simulated schedule, hence always allowed by the env's masks.
    Returned actions are fractions of each therapy's highest level (``action_mode =
    "continuous"``), converted to requests with the env's ``min_dose_fraction`` exactly as
    the env does.

Score
    The ``"qaly"`` reward (:func:`~oncogym.envs.functional.reward`) summed over the planned
    steps plus a terminal value of the end state (``terminal``):

    * ``"trend"`` (default) — the rest of the episode is valued by extrapolating the
      simulated log10 tumour burden linearly with its slope over the second half of the
      plan: the burden utility ``1 − w·b`` day by day, and if the extrapolated burden
      reaches the lethal size the episode's death penalty (years lost before the horizon).
      This counters myopia: with an 8-week plan the benefit of immunotherapy (a burden that
      keeps falling, a death avoided months later) is otherwise invisible against the
      immediate treatment burden.  It assumes the end-of-plan trend persists at no further
      treatment cost or toxicity — optimistic for a falling burden, which the receding
      horizon corrects as it replans;
    * ``"static"`` — the end burden is held for the rest of the episode (no death);
    * ``"none"`` — the planned steps only (myopic).

Modes
    ``"oracle"`` plans on copies of the true patients (all rows of ``env.state``: model
    state, parameters, bookkeeping and the future scan noise): an upper bound, not a
    clinical policy.

    ``"population"`` never reads the true patient's parameters ``P`` or model state ``Y``
    (nor the observation vector, which in ``observation="full"`` holds the model state).
    A particle filter per patient: at the start of each episode ``n_particles`` (default
    64) virtual patients are drawn from the task's training distribution
    (``params.sampler``), started with noise-free scans, and stepped every interval with
    exactly the doses the planner asked for the true patient at the last visit, so their
    constraint bookkeeping equals the patient's.  Their log-weights add the likelihood of
    each new scan: the measured diameter (``env.state.scan_mm``, 0 below the RECIST
    threshold) against the particle's noise-free diameter, log-normal with the
    env's scan noise inflated by ``model_sd`` (0.15 in ln mm; tempering for a finite
    pool); a lesion seen as absent counts the probability of reading below the threshold.
    A particle that dies while the patient lives gets weight 0; if all do, the weights
    restart uniform over the living ones (no rejuvenation: the pool is never re-drawn
    within an episode — a limitation).  Each plan runs on the ``n_plan_particles`` (4)
    particles of highest weight, and a schedule's score is their weight-averaged return.  Only
    clinic-visible bookkeeping is read: day, doses requested/delivered, scan records,
    whether the patient is alive.  The particle pools and plans are per patient row; a row
    whose day falls back (autoreset, a new ``reset``) or whose ``episode_start`` is set
    starts a new episode.  :meth:`MPCPlanner.predict` must be called at every step, and its
    actions given to the env (the filter steps the particles with them).

Cost
    About ``n_samples × n_iters × horizon_steps`` simulated intervals per patient and
    plan (× ``n_plan_particles`` in population mode); ``replan_every`` > 1 reuses a plan for
    that many visits (re-checked against the env's masks).  Simulations of many patients
    run in one parallel compiled call, in chunks of at most ``max_rows`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import log_ndtr

from oncogym.envs import functional as Fn
from oncogym.envs.task import EnvParams, make_params
from oncogym.rules import DAYS_PER_YEAR

MODES = ("oracle", "population")
TERMINALS = ("trend", "static", "none")

_PARAM_KWARGS = (
    "observation",
    "decision_days",
    "horizon_days",
    "scan_noise_cv",
    "rtol",
    "method",
    "enforce_constraints",
    "reward_weights",
    "setting",
    "population",
)

_TERMINAL_GRID = 24
_SMOOTHING = 0.7
_WARM_MIX = 0.7


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


class _Scratch:
    """Preallocated patients and their first ``m`` rows, for simulating candidates."""

    def __init__(self, fn: Fn.OncologyFunctional, capacity: int) -> None:
        self.fn = fn
        self.capacity = capacity
        self.full = fn.allocate(capacity)
        self._views: dict[int, Fn.Patients] = {}

    def view(self, m: int) -> Fn.Patients:
        if m not in self._views:
            if m > self.capacity:
                self.full = self.fn.allocate(m)
                self.capacity = m
                self._views.clear()
            self._views[m] = self.full.rows(m)
        return self._views[m]


class MPCPlanner:
    """Receding-horizon cross-entropy planner on the batched core (see the module docstring).

    :param task: the task the env was made for (``"melanoma"``, …)
    :param mode: ``"oracle"`` (plans on the true patients) or ``"population"`` (plans on a
        particle filter over the task's training distribution)
    :param horizon_steps: decision intervals per plan
    :param n_samples: schedules per CEM iteration and patient
    :param n_iters: CEM iterations per plan
    :param n_elite: schedules the distribution is refitted to (default ``n_samples // 4``)
    :param n_particles: population mode: particles per patient in the filter
    :param n_plan_particles: population mode: the particles of highest weight a plan is
        scored on (weight-averaged)
    :param replan_every: visits between plans (a plan's next steps are used in between);
        ``None``: 1 in oracle mode, 3 in population mode
    :param seed: seed of all randomness (same seed, same env → same actions)
    :param env_kwargs: the env's keyword arguments (``horizon_days``, ``decision_days``, …);
        used until :meth:`attach` supplies the env's own parameters
    :param terminal: terminal value, ``"trend"``, ``"static"`` or ``"none"``
    :param model_sd: population mode: model-error spread added to the scan noise (ln mm)
    :param max_rows: most simulated rows per compiled call (memory: ~20 kB a row)
    :param anchor: a fixed schedule tried by every plan's first iteration from the current
        step on (warm start; e.g. the best open-loop schedule,
        :class:`~oncogym.agents.openloop.OpenLoopSchedule`, or a ``(n_steps, n_therapies)``
        array of dose-level indices)
    """

    action_mode = "continuous"

    def __init__(
        self,
        task: str,
        *,
        mode: str = "oracle",
        horizon_steps: int = 8,
        n_samples: int = 32,
        n_iters: int = 3,
        n_elite: int | None = None,
        n_particles: int = 64,
        n_plan_particles: int = 4,
        replan_every: int | None = None,
        seed: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
        terminal: str = "trend",
        model_sd: float = 0.15,
        max_rows: int = 4096,
        anchor: Any = None,
    ) -> None:
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(terminal, str) or terminal not in TERMINALS:
            raise ValueError(f"terminal: expected one of {', '.join(TERMINALS)}, got {terminal!r}")
        self.task = task
        self.mode = mode
        self.terminal = terminal
        self.horizon_steps = _int("horizon_steps", horizon_steps, 1)
        self.n_samples = _int("n_samples", n_samples, 2)
        self.n_iters = _int("n_iters", n_iters, 1)
        self.n_elite = max(1, self.n_samples // 4) if n_elite is None else n_elite
        _int("n_elite", self.n_elite, 1)
        if self.n_elite > self.n_samples:
            raise ValueError(f"n_elite: must be <= n_samples ({self.n_samples}), got {n_elite}")
        self.n_particles = _int("n_particles", n_particles, 1)
        self.n_plan_particles = min(_int("n_plan_particles", n_plan_particles, 1), n_particles)
        if replan_every is None:
            replan_every = 1 if mode == "oracle" else 3
        self.replan_every = _int("replan_every", replan_every, 1)
        self.seed = _int("seed", seed, 0)
        if isinstance(model_sd, bool) or not isinstance(model_sd, (int, float)) or model_sd < 0:
            raise ValueError(f"model_sd: expected a number >= 0, got {model_sd!r}")
        self.model_sd = float(model_sd)
        self.max_rows = _int("max_rows", max_rows, 1)
        self.env_kwargs = dict(env_kwargs or {})
        kwargs = {k: v for k, v in self.env_kwargs.items() if k in _PARAM_KWARGS}
        self.params: EnvParams = make_params(task, **kwargs)
        self.min_dose_fraction = float(self.env_kwargs.get("min_dose_fraction", 0.05))
        self.name = f"mpc_{mode}"
        self._env: Any = None
        self.anchor = anchor
        self._anchor = self._anchor_table(anchor)

    def _anchor_table(self, anchor: Any) -> np.ndarray | None:
        if anchor is None:
            return None
        table = anchor.table(self.params) if hasattr(anchor, "table") else np.asarray(anchor)
        p = self.params
        if table.shape != (p.n_steps, p.n_therapies) or not np.issubdtype(table.dtype, np.integer):
            raise ValueError(
                f"anchor: expected ({p.n_steps}, {p.n_therapies}) dose-level indices, "
                f"got an array of shape {table.shape} and dtype {table.dtype}"
            )
        if (table < 0).any() or (table >= p.n_levels[None, :]).any():
            raise ValueError("anchor: a dose-level index outside the task's levels")
        return table.astype(np.int64)

    # --- setup ------------------------------------------------------------------------------
    def attach(self, env: Any) -> None:
        """Plan for ``env`` (an ``OncologyVectorEnv`` or an unwrapped ``OncologyEnv``, reset)."""
        env = getattr(env, "unwrapped", env)
        if not hasattr(env, "params") or not hasattr(env, "patients"):
            raise ValueError(
                f"env: expected an OncologyEnv or OncologyVectorEnv, got {type(env).__name__}"
            )
        if env.params.name != self.params.name:
            raise ValueError(
                f"env: the planner was made for task {self.params.name!r}, "
                f"the env runs {env.params.name!r}"
            )
        self._env = env
        self.params = p = env.params
        self._anchor = self._anchor_table(self.anchor)
        self.min_dose_fraction = float(getattr(env, "min_dose_fraction", self.min_dose_fraction))
        self._fn = Fn.OncologyFunctional.from_params(
            p, action_mode="continuous", reward="qaly", min_dose_fraction=self.min_dose_fraction
        )
        n = env.patients.n
        nt = p.n_therapies
        L = int(p.n_levels.max())
        self._L = L
        self._col = np.concatenate([[0], np.cumsum(p.n_levels)[:-1]]).astype(np.int64)
        frac = p.level_table / p.max_level[:, None]
        self._frac = np.clip(frac, 0.0, 1.0).astype(np.float32)
        valid = np.arange(L)[None, :] < p.n_levels[:, None]
        self._uniform = valid / valid.sum(axis=1, keepdims=True)  # (nt, L)
        self._rng = np.random.default_rng([self.seed, 0])
        self._scratch = _Scratch(self._fn, min(self.max_rows, 1024))
        H = self.horizon_steps
        self._plan = np.zeros((n, H, nt), dtype=np.int64)  # best schedule (levels)
        self._probs = np.broadcast_to(self._uniform, (n, H, nt, L)).copy()
        self._age = np.full(n, -1, dtype=np.int64)  # visits since the plan (-1: none)
        self._row_day = np.full(n, np.inf)
        self._episodes = np.zeros(n, dtype=np.int64)
        self._last_actions = np.zeros((n, nt), dtype=np.float32)  # asked for at the last visit
        if self.mode == "population":
            self._pool = self._fn.allocate(n * self.n_particles)
            self._logw = np.zeros((n, self.n_particles))
            self._scan_day = np.full(n, -np.inf)
        self._new_episode(np.arange(n))
        self._row_day = env.state.day.copy()

    # --- policy -----------------------------------------------------------------------------
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Doses of the next interval: fractions of each therapy's highest level, ``[0, 1]``."""
        if self._env is None:
            raise RuntimeError("predict: call attach(env) after env.reset() first")
        s = self._env.state
        n = self._env.patients.n
        obs = np.asarray(observation)
        single = obs.ndim == 1
        rows_in = 1 if single else obs.shape[0]
        if rows_in != n:
            raise ValueError(f"observation: expected {n} rows (the attached env), got {rows_in}")
        day = s.day.copy()
        new = day < self._row_day - 1e-9
        if episode_start is not None:
            new |= np.broadcast_to(np.asarray(episode_start, dtype=np.bool_), (n,))
        new &= day < 1e-9
        if new.any():
            self._new_episode(np.flatnonzero(new))
        if self.mode == "population":
            self._filter(day)
        self._row_day = day
        alive = s.alive & (day < self.params.horizon_days - 1e-9)
        levels = np.zeros((n, self.params.n_therapies), dtype=np.int64)
        stale = (self._age < 0) | (self._age + 1 >= min(self.replan_every, self.horizon_steps))
        replan = np.flatnonzero(alive & stale)
        keep = np.flatnonzero(alive & ~stale)
        if keep.size:
            self._age[keep] += 1
            levels[keep] = self._plan[keep, self._age[keep]]
        if replan.size:
            self._replan(replan)
            self._age[replan] = 0
            levels[replan] = self._plan[replan, 0]
        # what the env allows now (clinic-visible bookkeeping only)
        mask = self._fn.action_masks(self._env.patients)
        ok = np.take_along_axis(mask, self._col[None, :] + levels, axis=1)
        levels = np.where(ok & alive[:, None], levels, 0)
        actions = self._frac[np.arange(self.params.n_therapies)[None, :], levels]
        self._last_actions[:] = actions
        return (actions[0] if single else actions), None

    # --- episodes and the particle filter ---------------------------------------------------
    def _new_episode(self, rows: np.ndarray) -> None:
        self._age[rows] = -1
        self._plan[rows] = 0
        self._probs[rows] = self._uniform
        self._episodes[rows] += 1
        if self.mode != "population":
            return
        p, m = self.params, self.n_particles
        source = self._env.patients
        for b in rows:
            rng = np.random.default_rng([self.seed, 1, int(b), int(self._episodes[b])])
            P, Y0 = p.sampler.sample(rng, m)
            prow = np.arange(b * m, (b + 1) * m)
            noise_free = np.zeros((m, self._pool.state.scan_noise.shape[1]))
            self._fn.initial(self._pool, prow, Fn.Draws(P, Y0, noise_free))
            # the particles keep the patient's clinic calendar in a tier (scan delays, missed
            # visits and labs), so that they are scanned and dosed when the patient is; not
            # its hidden PK/PD drift.  The whole calendar is copied, future no-shows included:
            # a simplification of this baseline (a clinic learns them as they happen)
            Fn.share_schedule(self._pool, prow, source, int(b))
            if source.view.day[b] > 1e-9:  # attached mid-episode: take over the clinic record
                Fn.continue_clinic(self._pool, prow, source, int(b))
            self._logw[b] = 0.0
            self._scan_day[b] = -np.inf
        self._observe_scans(rows)

    def _filter(self, day: np.ndarray) -> None:
        """Step the particles of rows whose patient advanced one interval; reweight."""
        m = self.n_particles
        adv = np.flatnonzero(day > self._row_day + 1e-9)
        if adv.size == 0:
            return
        prow = (adv[:, None] * m + np.arange(m)[None, :]).ravel()
        actions = np.repeat(self._last_actions[adv], m, axis=0)
        if adv.size == self._env.patients.n:
            self._fn.transition(self._pool, actions, parallel=True)
        else:
            for lo in range(0, prow.size, self.max_rows):
                chunk = prow[lo : lo + self.max_rows]
                view = self._scratch.view(chunk.size)
                Fn.copy_rows(view, self._pool, chunk)
                self._fn.transition(view, actions[lo : lo + self.max_rows], parallel=True)
                Fn.copy_rows(self._pool, view, dst_rows=chunk)
        self._observe_scans(adv)

    def _observe_scans(self, rows: np.ndarray) -> None:
        p, s, m = self.params, self._env.state, self.n_particles
        pool = self._pool.view
        pool_alive = pool.alive.reshape(-1, m)[rows]
        lw = self._logw[rows]
        lw[~pool_alive & s.alive[rows][:, None]] = -np.inf
        fresh = s.scan_day[rows] > self._scan_day[rows]
        if fresh.any():
            r = rows[fresh]
            sd = float(np.hypot(p.scan_sigma, self.model_sd))
            thr = float(p.cr_threshold_mm)
            measured = s.scan_mm[r][:, None]
            pmm = pool.scan_mm.reshape(-1, m)[r]
            pmm = np.where(pmm > 0.0, pmm, 0.5 * thr)  # below the threshold: at most thr
            seen = np.log(np.maximum(measured, 1e-12)) - np.log(pmm)
            ll_seen = -0.5 * (seen / sd) ** 2
            ll_unseen = log_ndtr((np.log(thr) - np.log(pmm)) / sd)
            lw[fresh] += np.where(measured > 0.0, ll_seen, ll_unseen)
            self._scan_day[r] = s.scan_day[r]
        lost = ~np.isfinite(lw).any(axis=1)
        if lost.any():  # no particle is consistent: restart uniform over the living ones
            lw[lost] = np.where(
                pool_alive[lost] | ~pool_alive[lost].any(axis=1)[:, None], 0.0, -np.inf
            )
        lw -= lw.max(axis=1, keepdims=True)
        self._logw[rows] = lw

    # --- planning ---------------------------------------------------------------------------
    def _replan(self, rows: np.ndarray) -> None:
        per = self.n_samples * (self.n_plan_particles if self.mode == "population" else 1)
        step = max(1, self.max_rows // per)
        for lo in range(0, rows.size, step):
            self._cem(rows[lo : lo + step])

    def _sources(self, rows: np.ndarray) -> tuple[Fn.Patients, np.ndarray, np.ndarray]:
        """Start states of the plan: ``(patients, row indices (n, k), weights (n, k))``."""
        if self.mode == "oracle":
            return self._env.patients, rows[:, None], np.ones((rows.size, 1))
        m, k = self.n_particles, self.n_plan_particles
        lw = self._logw[rows]
        order = np.argsort(-lw, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(lw, order, axis=1)
        w = np.where(np.isfinite(top), np.exp(top - top[:, :1]), 0.0)
        if not np.all(w.sum(axis=1) > 0):
            w = np.ones_like(w)
        w /= w.sum(axis=1, keepdims=True)
        return self._pool, rows[:, None] * m + order, w

    def _cem(self, rows: np.ndarray) -> None:
        p = self.params
        n, S, H, nt, L = rows.size, self.n_samples, self.horizon_steps, p.n_therapies, self._L
        src, src_rows, w = self._sources(rows)
        k = src_rows.shape[1]
        days_left = p.horizon_days - self._env.state.day[rows]
        steps_left = np.ceil(days_left / p.decision_days - 1e-9).astype(np.int64)
        # warm start: the previous plan and distribution shifted by the visits since
        shift = np.clip(self._age[rows] + 1, 0, H)
        idx = np.minimum(np.arange(H)[None, :] + shift[:, None], H - 1)
        started = self._age[rows] >= 0
        prev_plan = np.take_along_axis(self._plan[rows], idx[:, :, None], axis=1)
        prev_plan[np.arange(H)[None, :] + shift[:, None] >= H] = 0
        probs = np.take_along_axis(self._probs[rows], idx[:, :, None, None], axis=1)
        warm = _WARM_MIX * probs + (1 - _WARM_MIX) * self._uniform
        probs = np.where(started[:, None, None, None], warm, self._uniform)
        top_level = (p.n_levels - 1)[None, None, :]
        best = np.where(started[:, None, None], prev_plan, np.broadcast_to(top_level, (n, H, nt)))
        best_score = np.full(n, -np.inf)
        R = n * S * k
        view = self._scratch.view(R)
        flat_src = np.repeat(src_rows[:, None, :], S, axis=1).ravel()
        for it in range(self.n_iters):
            cum = np.cumsum(probs, axis=-1)
            u = self._rng.random((n, S, H, nt, 1))
            lv = np.minimum((u > cum[:, None]).sum(axis=-1), p.n_levels - 1)
            lv[:, 0] = best
            if it == 0 and S >= 3:
                lv[:, 1] = 0
                lv[:, 2] = top_level
            if it == 0 and S >= 4 and self._anchor is not None:
                k0 = np.rint(self._env.state.day[rows] / p.decision_days).astype(np.int64)
                ks = k0[:, None] + np.arange(H)[None, :]
                inside = ks < self._anchor.shape[0]
                lv[:, 3] = np.where(
                    inside[:, :, None], self._anchor[np.minimum(ks, self._anchor.shape[0] - 1)], 0
                )
            Fn.copy_rows(view, src, flat_src)
            lv, score = self._simulate(view, lv, w, steps_left)
            better = score.max(axis=1) > best_score
            arg = score.argmax(axis=1)
            best = np.where(better[:, None, None], lv[np.arange(n), arg], best)
            best_score = np.maximum(best_score, score.max(axis=1))
            elite = np.argsort(-score, axis=1, kind="stable")[:, : self.n_elite]
            e = np.take_along_axis(lv, elite[:, :, None, None], axis=1)  # (n, E, H, nt)
            freq = (e[..., None] == np.arange(L)).mean(axis=1)  # (n, H, nt, L)
            probs = _SMOOTHING * freq + (1 - _SMOOTHING) * probs
        self._plan[rows] = best
        self._probs[rows] = probs

    def _simulate(
        self, view: Fn.Patients, lv: np.ndarray, w: np.ndarray, steps_left: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run schedules ``lv`` (n, S, H, nt) from ``view``; effective levels and scores (n, S)."""
        p, fn = self.params, self._fn
        n, S, H, nt = lv.shape
        k = w.shape[1]
        lv = lv.copy()
        ret = np.zeros(n * S * k)
        ther = np.arange(nt)
        v = view.view
        log_mid = np.log10(1.0 + Fn.tumour_cells(v.y, p.tumour_index))
        day_mid = v.day.copy()
        h_mid = max(0, H // 2 - 1) if H > 1 else -1
        for h in range(H):
            active = h < steps_left  # (n,)
            if not active.any():
                break
            Fn.end_episodes(view, np.repeat(~active, S * k))  # past the horizon: no more steps
            mask = fn.action_masks(view).reshape(n, S, k, -1).any(axis=2)
            ok = np.take_along_axis(mask, self._col[None, None, :] + lv[:, :, h], axis=2)
            lv[:, :, h] = np.where(ok, lv[:, :, h], 0)
            frac = self._frac[ther[None, None, :], lv[:, :, h]]  # (n, S, nt)
            actions = np.repeat(frac[:, :, None, :], k, axis=2).reshape(-1, nt)
            out = fn.step(view, actions, parallel=True)
            ret += out.reward
            if h == h_mid:
                log_mid[:] = out.interval.log10_burden_end
                day_mid[:] = v.day
        ret += self._terminal_value(v, log_mid, day_mid)
        score = (ret.reshape(n, S, k) * w[:, None, :]).sum(axis=2)
        return lv, score

    def _terminal_value(self, v: Any, log_mid: np.ndarray, day_mid: np.ndarray) -> np.ndarray:
        """Value of the rest of the episode after the plan (see ``terminal``), in years;
        ``v`` is the simulated patients' read-only state."""
        p = self.params
        n = v.day.shape[0]
        if self.terminal == "none":
            return np.zeros(n)
        alive = v.alive
        t_end = v.day
        rest = np.maximum(p.horizon_days - t_end, 0.0)
        log_end = np.log10(1.0 + Fn.tumour_cells(v.y, p.tumour_index))
        slope = np.zeros(n)
        if self.terminal == "trend":
            span = t_end - day_mid
            ok = span > 0.5
            slope[ok] = (log_end[ok] - log_mid[ok]) / span[ok]
        log_lethal = np.log10(p.lethal_cells)
        tau = (np.arange(_TERMINAL_GRID) + 0.5) / _TERMINAL_GRID  # midpoints of the rest
        t = rest[:, None] * tau[None, :]
        logb = log_end[:, None] + slope[:, None] * t
        b = np.clip((logb - p.burden_lo) / p.burden_span, 0.0, 1.0)
        util = 1.0 - p.burden_weight * b
        dead = logb >= log_lethal
        util[dead] = 0.0
        years = rest / DAYS_PER_YEAR
        value = util.mean(axis=1) * years
        with np.errstate(divide="ignore", invalid="ignore"):
            t_death = np.where(slope > 0, (log_lethal - log_end) / slope, np.inf)
        dies = alive & (t_death < rest)
        value[dies] -= (
            p.death_weight * (rest[dies] - np.maximum(t_death[dies], 0.0)) / DAYS_PER_YEAR
        )
        return np.where(alive, value, 0.0)
