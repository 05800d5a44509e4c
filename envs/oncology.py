"""The single-patient Gymnasium environment (a thin adapter over :mod:`.functional`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from . import _kernels as K
from . import functional as Fn
from .task import EnvParams, make_params

ACTION_MODES = ("discrete", "continuous")
RENDER_MODES = ("rgb_array", "ansi")


def build_spaces(params: EnvParams, action_mode: str) -> tuple[spaces.Space, spaces.Box]:
    """``(action_space, observation_space)`` of one patient."""
    if action_mode == "discrete":
        action_space: spaces.Space = spaces.MultiDiscrete(params.n_levels.copy())
    else:
        action_space = spaces.Box(0.0, 1.0, shape=(params.n_therapies,), dtype=np.float32)
    layout = Fn.observation_layout(params)
    low = np.array([r[2] for r in layout], dtype=np.float32)
    high = np.array([r[3] for r in layout], dtype=np.float32)
    return action_space, spaces.Box(low, high, dtype=np.float32)


def check_mode(action_mode: Any, reward: Any, render_mode: Any) -> None:
    if not isinstance(action_mode, str) or action_mode not in ACTION_MODES:
        raise ValueError(
            f"action_mode: expected one of {', '.join(ACTION_MODES)}, got {action_mode!r}"
        )
    if not callable(reward) and (not isinstance(reward, str) or reward not in Fn.REWARDS):
        raise ValueError(
            f"reward: expected one of {', '.join(Fn.REWARDS)} or a callable, got {reward!r}"
        )
    if render_mode is not None and render_mode not in RENDER_MODES:
        allowed = ", ".join(RENDER_MODES)
        raise ValueError(f"render_mode: expected None or one of {allowed}, got {render_mode!r}")


def check_min_dose_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"min_dose_fraction: expected a number in [0, 1), got {value!r}")
    return float(value)


class OncologyEnv(gym.Env[np.ndarray, np.ndarray]):
    """Scheduling cancer therapy for one virtual patient, one clinic visit per step.

    ## Description

    Each episode is one virtual patient of a scenario (an indication on the ``oncoimmune``
    tumour–immune model: melanoma, NSCLC, renal cell carcinoma, prostate cancer, B-cell
    ALL, large B-cell lymphoma) or of a literature model (de Pillis 2006, Kirschner &
    Panetta 1998).  Every ``decision_days`` (default 7: a weekly visit) the agent picks a
    dose level of each therapy the scenario offers; the environment gives the doses the
    clinical constraints allow, integrates the patient over the interval with the compiled
    core (daily outputs), grades toxicity, scans on the scenario's imaging schedule and
    returns what a clinic would see.  The dynamics are shared with
    :class:`oncogym.envs.OncologyVectorEnv` through :mod:`oncogym.envs.functional`.

    ## Action Space

    ``action_mode="discrete"`` (default): ``MultiDiscrete(n_levels)``, one dose-level index
    per therapy (level 0 = no dose; the levels are the scenario's ``dose_levels`` in the
    model's clinical units, ``env.unwrapped.dose_levels``).  ``"continuous"``: ``Box(0, 1,
    (n_therapies,))``, the fraction of the highest level (below ``min_dose_fraction`` no
    dose).  What a dose means over one interval: radiotherapy = one fraction of that size
    on each weekday of the interval; lymphodepletion = a 3-day course; CAR-T = one infusion
    (two days after a lymphodepletion course of the same interval); every other therapy =
    one administration on the first day; literature therapies = a constant infusion rate.

    Constraints (unless ``enforce_constraints=False``): CAR-T at most once; no
    administration closer than the minimum interval of the dose asked for (label
    intervals per dose level: nivolumab 240 mg q2w / 480 mg q4w, pembrolizumab 200 mg q3w
    / 400 mg q6w; anti-CTLA-4 21 days, chemotherapy 21 days, per scenario; a continuous
    dose between levels takes the next level up's interval); maximum administrations
    (ipilimumab 4, sipuleucel-T 3); cumulative caps (radiotherapy Gy, chemotherapy
    mg/m²).  A forbidden dose is not given, ``info["blocked"]`` names it, and
    :meth:`action_masks` returns the allowed levels (sb3-contrib ``MaskablePPO``).  An
    action outside the space, or NaN, raises ``ValueError``.

    ## Observation Space

    ``observation="clinical"`` (default; float32, scenario tasks):

    | index | name | unit | min | max |
    |---|---|---|---|---|
    | 0 | scan_log10_cells | log10(1 + cells) of the last scan's measured lesion | 0 | 14 |
    | 1 | weeks_since_scan | weeks | 0 | (horizon + interval)/7 |
    | 2 | log10_ANC | log10(1 + neutrophils per L) | 0 | 14 |
    | 3 | log10_ALC | log10(1 + lymphocytes per L) | 0 | 14 |
    | 4–8 | grade_<category> | worst grade in the last interval (5 categories¹) | 0 | 5 |
    | … | days_since_<therapy> | days since the last dose (never: cap) | 0 | horizon + interval |
    | … | cumulative_<therapy> | delivered amount / highest dose level | 0 | steps × doses/step |
    | last | day | days since the start of treatment | 0 | horizon + interval |

    ¹ CTCAE-like grades of neutropenia, lymphopenia, irae, crs, radiation_late
    (:mod:`oncogym.toxicity`).

    Scans happen on the scenario's schedule (baseline at day 0); a scan measures the
    lesion's diameter with multiplicative noise (``scan_noise_cv``, default 10 %), a lesion
    below the RECIST threshold (10 mm) reads 0, and the value is held until the next scan.
    Literature tasks have the labs their model has (de Pillis: ALC from circulating
    lymphocytes; Kirschner–Panetta: none) and the matching grades.  ``"full"``:
    log10(1 + state) of every model state (clipped at 20; pharmacokinetic compartments
    included), then the same days-since, cumulative-dose and day entries.
    ``env.unwrapped.observation_names`` lists the entries.

    ## Rewards

    ``reward="qaly"`` (default), in quality-adjusted life years (QALYs).  Each day alive
    earns a utility ``u = max(0, 1 − 0.3·b − Σ_c d(grade_c))``: ``b`` rises linearly from
    0 to 1 over the three decades of log10 tumour cells below the lethal burden, ``d`` is
    0, 0.02, 0.05, 0.15, 0.3 for grades 0–4 in each toxicity category.  Each administration
    costs its treatment burden (half a day for an outpatient infusion … two weeks for
    CAR-T; :data:`oncogym.envs.task.ADMINISTRATION_DISUTILITY_DAYS`).  At death the
    years of life lost before the horizon are charged once.  Hence ending an episode early
    can never pay: every day alive earns ``u >= 0``, and dying at day τ costs
    ``(horizon − τ)/365.25``, at least what the remaining days could still earn.  No
    terminal bonus.  ``"tumor_reduction"``: the fall of log10 tumour cells minus 0.05 per
    maximum-dose equivalent (peer style, for comparison; gameable).  A callable receives
    the components (dict of arrays with one value per patient) and returns the reward.
    Every component is in ``info["reward_components"]``.

    ## Starting State

    ``reset()`` draws a new virtual patient from the scenario's training distribution
    (parameters and initial burden; :func:`oncogym.scenarios.sample_patients`) and the scan
    noise, all from ``self.np_random`` (seeded by ``reset(seed=...)``).
    ``options={"patient": (params, y0)}`` (dicts by name or arrays in model order) or
    ``options={"cohort": cohort, "index": i}`` (a :class:`oncogym.scenarios.Cohort`) fixes
    the patient.  Day 0 is the start of treatment and the baseline scan.

    ## Episode End

    * Termination: death — tumour burden at the scenario's lethal size (1e12 cells), any
      grade-5 toxicity, or (with ``info["error"]``) an integrator failure.
    * Truncation: the horizon (``horizon_days``, default 730) is reached alive; the
      registered ``max_episode_steps`` is the default number of intervals.

    ## Arguments

    | argument | default | meaning |
    |---|---|---|
    | task | — | ``"melanoma"``, …, ``"depillis2006"``, ``"kirschner_panetta1998"`` |
    | action_mode | ``"discrete"`` | ``"discrete"`` or ``"continuous"`` |
    | observation | ``"clinical"`` | ``"clinical"`` or ``"full"`` |
    | reward | ``"qaly"`` | ``"qaly"``, ``"tumor_reduction"`` or a callable |
    | decision_days | 7 (de Pillis 1) | days per step (integer) |
    | horizon_days | 730 (prostate 1460, de Pillis 150) | episode length in days |
    | scan_noise_cv | 0.1 | CV of a scan's diameter measurement |
    | enforce_constraints | True | apply the clinical constraints |
    | min_dose_fraction | 0.05 | continuous actions below this are no dose |
    | reward_weights | None | overrides of the qaly weights² |
    | rtol, method | 1e-6, ``"auto"`` | integrator settings |
    | render_mode | None | ``"rgb_array"`` or ``"ansi"`` |

    ² ``burden_weight``, ``burden_span_decades``, ``toxicity_disutility``,
    ``death_penalty_per_year`` (:mod:`oncogym.envs.task`).

    ```python
    import gymnasium as gym
    import oncogym

    env = gym.make("oncogym/Melanoma-v0", action_mode="continuous", decision_days=14)
    ```

    ## Version History

    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        task: str = "melanoma",
        *,
        action_mode: str = "discrete",
        observation: str = "clinical",
        reward: str | Fn.RewardFn = "qaly",
        decision_days: int | None = None,
        horizon_days: float | None = None,
        scan_noise_cv: float | None = None,
        enforce_constraints: bool = True,
        min_dose_fraction: float = 0.05,
        reward_weights: Mapping[str, Any] | None = None,
        rtol: float = 1e-6,
        method: str = "auto",
        render_mode: str | None = None,
    ) -> None:
        check_mode(action_mode, reward, render_mode)
        kwargs: dict[str, Any] = {
            "observation": observation,
            "horizon_days": horizon_days,
            "enforce_constraints": enforce_constraints,
            "reward_weights": reward_weights,
            "rtol": rtol,
            "method": method,
        }
        if decision_days is not None:
            kwargs["decision_days"] = decision_days
        if scan_noise_cv is not None:
            kwargs["scan_noise_cv"] = scan_noise_cv
        self.params: EnvParams = make_params(task, **kwargs)
        self.action_mode = action_mode
        self.reward_kind = reward
        self.min_dose_fraction = check_min_dose_fraction(min_dose_fraction)
        self.render_mode = render_mode
        self.action_space, self.observation_space = build_spaces(self.params, action_mode)
        self.observation_names = tuple(r[0] for r in Fn.observation_layout(self.params))
        self._state = Fn.allocate(self.params, 1)
        self._args = Fn.StepArgs(self.params, self._state)
        self._rows = np.zeros(1, dtype=np.int64)
        self._ready = False
        self._history: list[dict[str, Any]] = []

    # --- pickling: the compiled kernels' argument tuple holds function pointers ---------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_args", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._args = Fn.StepArgs(self.params, self._state)

    # --- descriptive attributes -------------------------------------------------------------
    @property
    def therapies(self) -> tuple[str, ...]:
        return self.params.therapies

    @property
    def dose_levels(self) -> tuple[tuple[float, ...], ...]:
        return self.params.dose_levels

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.params.model.state_names

    @property
    def state(self) -> Fn.BatchState:
        """The patient's state (a one-row :class:`~oncogym.envs.functional.BatchState`)."""
        return self._state

    # --- Gymnasium API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        P, Y0, z = choose_patients(self.params, [self.np_random], options, [0])
        Fn.initial(self.params, self._state, self._rows, P, Y0, z, args=self._args)
        self._ready = True
        info = self._info(reset=True)
        if self.render_mode is not None:
            self._history = [self._snapshot(0.0)]
        return self._state.OBS[0].copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        if not self._ready:
            raise RuntimeError("step: call reset() before step()")
        s = self._state
        Fn.action_to_request(
            self.params,
            np.asarray(action)[np.newaxis],
            self.action_mode,
            s.REQ,
            min_dose_fraction=self.min_dose_fraction,
        )
        Fn.transition(self.params, s, args=self._args)
        r = float(Fn.reward(self.params, s, self.reward_kind)[0])
        terminated = s.I[0, K.I_ALIVE] == 0
        truncated = not terminated and s.F[0, K.F_T] >= self.params.horizon_days - 1e-9
        if terminated or truncated:
            self._ready = False
        info = self._info(reset=False, reward=r)
        if self.render_mode is not None:
            self._history.append(self._snapshot(r))
        return s.OBS[0].copy(), r, bool(terminated), bool(truncated), info

    def action_masks(self) -> np.ndarray:
        """Allowed dose levels of the next step, flattened over therapies (MaskablePPO)."""
        return Fn.action_masks(self.params, self._state)[0].copy()

    def render(self) -> Any:
        if self.render_mode is None:
            gym.logger.warn("render: no render_mode was given to the environment")
            return None
        from . import render

        if self.render_mode == "ansi":
            return render.ansi_lines(self.params, self._history)
        return render.rgb_array(self.params, self._history)

    # --- info --------------------------------------------------------------------------------
    def _info(self, *, reset: bool, reward: float = 0.0) -> dict[str, Any]:
        return step_info(self.params, self._state, 0, reset=reset, reward=reward)

    def _snapshot(self, reward: float) -> dict[str, Any]:
        from . import render

        return render.snapshot(self.params, self._state, 0, reward)


def step_info(
    params: EnvParams, s: Fn.BatchState, b: int, *, reset: bool, reward: float = 0.0
) -> dict[str, Any]:
    """The info dict of patient ``b`` (true state, toxicity, RECIST, doses, components)."""
    from oncogym.clinical import RESPONSE_NAMES

    th = params.therapies
    cats = params.tox_categories
    info: dict[str, Any] = {
        "day": float(s.F[b, K.F_T]),
        "state": s.Y[b].copy(),
        "tumour_cells": float(s.Y[b, params.tumour_index].sum()),
        "toxicity": {c: int(s.WSTEP[b, i]) for i, c in enumerate(cats)},
        "worst_toxicity": {c: int(s.WEVER[b, i]) for i, c in enumerate(cats)},
        "recist": RESPONSE_NAMES[int(s.I[b, K.I_RECIST])],
        "best_response": RESPONSE_NAMES[int(s.I[b, K.I_BEST])],
        "doses": dict(zip(th, s.DELIV[b].tolist(), strict=True)),
        "cumulative_doses": dict(zip(th, s.CUM[b].tolist(), strict=True)),
        "blocked": tuple(t for t, x in zip(th, s.BLOCKED[b], strict=True) if x),
    }
    if not reset:
        comps = {n: float(s.COMP[b, i]) for i, n in enumerate(Fn.COMPONENT_NAMES)}
        comps["reward"] = reward
        info["reward_components"] = comps
    cause = int(s.I[b, K.I_CAUSE])
    if cause != K.DEATH_NONE:
        info["death_cause"] = Fn.DEATH_CAUSES[cause]
        info["death_day"] = float(s.F[b, K.F_DEATH_DAY])
    if cause == K.DEATH_ERROR:
        from oncogym.integrate import STATUS_NAMES

        info["error"] = f"integrator failed: {STATUS_NAMES[int(s.I[b, K.I_STATUS])]}"
    return info


def choose_patients(
    params: EnvParams,
    rngs: list[np.random.Generator],
    options: Mapping[str, Any] | None,
    env_indices: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patients for ``len(rngs)`` resets: drawn from each generator, or fixed by ``options``.

    ``options["cohort"]`` with ``options["index"]`` (default 0) gives patient
    ``index + env_indices[j]`` to the ``j``-th reset (in a vector env, sub-env ``i`` gets
    patient ``index + i``); the scan noise still comes from the generators.
    """
    n = len(rngs)
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"options: expected a dict, got {type(options).__name__}")
    opts = dict(options or {})
    opts.pop("reset_mask", None)
    unknown = set(opts) - {"patient", "cohort", "index"}
    if unknown:
        raise ValueError(
            f"options: unknown keys {sorted(unknown)}; allowed: patient, cohort, index"
        )
    if "patient" in opts and "cohort" in opts:
        raise ValueError("options: give either 'patient' or 'cohort', not both")
    m = params.model
    P = np.empty((n, len(m.param_names)))
    Y0 = np.empty((n, m.n_states))
    Z = np.empty((n, max(1, len(params.scan_days))))
    for j, rng in enumerate(rngs):
        if "patient" in opts:
            p, y = Fn.patient_rows(params, opts["patient"])
            P[j], Y0[j] = p, y
            Z[j] = rng.standard_normal(Z.shape[1])
        elif "cohort" in opts:
            cohort = opts["cohort"]
            if not hasattr(cohort, "params") or not hasattr(cohort, "y0"):
                raise ValueError(
                    f"options['cohort']: expected a Cohort, got {type(cohort).__name__}"
                )
            if cohort.params.shape[1] != len(m.param_names):
                raise ValueError(f"options['cohort']: not a cohort of model {m.name!r}")
            index = opts.get("index", 0)
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise ValueError(f"options['index']: expected an integer, got {index!r}")
            i = int(index) + int(env_indices[j])
            if not 0 <= i < cohort.params.shape[0]:
                size = cohort.params.shape[0]
                raise ValueError(f"options['index']: patient {i} is outside the cohort of {size}")
            P[j], Y0[j] = cohort.params[i], cohort.y0[i]
            Z[j] = rng.standard_normal(Z.shape[1])
        else:
            p, y, z = Fn.sample_patients(params, rng, 1)
            P[j], Y0[j], Z[j] = p[0], y[0], z[0]
    return P, Y0, Z
