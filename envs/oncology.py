"""The single-patient Gymnasium environment: a thin adapter over :mod:`.functional`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

from . import _kernels as K
from . import functional as Fn
from .task import EnvParams

RENDER_MODES = ("rgb_array", "ansi")


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
    | 0 | scan_log10_cells | log10(1 + cells) of the lesions the last scan saw | 0 | 14 |
    | 1 | weeks_since_scan | weeks | 0 | (horizon + interval)/7 |
    | 2 | scan_sld_mm | sum of the target lesions' diameters at the last scan (mm) | 0 | 2000 |
    | 3 | lesions_seen | lesions seen at the last scan | 0 | lesion slots (4) |
    | 4 | new_lesion | 1 if the last scan saw a lesion absent at baseline | 0 | 1 |
    | 5 | recist | RECIST 1.1 category of the last scan (0 CR, 1 PR, 2 SD, 3 PD, 4 NE) | 0 | 4 |
    | 6 | log10_ANC | log10(1 + neutrophils per L) | 0 | 14 |
    | 7 | log10_ALC | log10(1 + lymphocytes per L) | 0 | 14 |
    | 8–12 | grade_<category> | worst grade in the last interval (5 categories¹) | 0 | 5 |
    | … | days_since_<therapy> | days since the last dose (never: cap) | 0 | horizon + interval |
    | … | cumulative_<therapy> | delivered amount / highest dose level | 0 | steps × doses/step |
    | last | day | days since the start of treatment | 0 | horizon + interval |

    ¹ CTCAE-like grades of neutropenia, lymphopenia, irae, crs, radiation_late
    (:mod:`oncogym.toxicity`).

    With ``setting="missing_labs"`` or ``"hard"`` the clinical observation has one more
    entry per lab after the grades, ``observed_ANC`` and ``observed_ALC`` (1 if measured at
    this visit, 0 if the lab and the grade of its category hold their last observed
    value), so its shape grows by two (``day`` stays last); see Difficulty Tiers.

    Scans happen on the scenario's schedule (baseline at day 0).  Metastatic scenarios
    have up to four lesions per patient (one per site, e.g. skin and nodes, lung, liver,
    other visceral sites in melanoma), sharing the patient's immune system and drug levels;
    a scan measures each lesion's diameter with its own multiplicative noise
    (``scan_noise_cv``, default 10 %), a lesion below the RECIST threshold (10 mm) is not
    seen, and RECIST 1.1 reads the sum of the target lesions (those seen at baseline at a
    measurable site), new lesions (progression) and complete disappearance of every lesion
    (CR).  The values are held until the next scan.
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
    the patient.  Day 0 is the start of treatment and the baseline scan.  In the
    ``"shift"`` and ``"hard"`` settings the drawn patient comes from the shifted population
    (unless ``population="train"``); a fixed patient is used as given.

    ## Episode End

    * Termination: death — the patient's cumulative hazard of death (background mortality
      plus a cancer hazard that rises with the tumour burden, weighted by site) reaching
      their death threshold (a unit-exponential draw at reset; ``info["death_cause"]`` is
      ``"tumour"``), the tumour burden at the scenario's lethal size (1e12 cells), any
      grade-5 toxicity, or (with ``info["error"]``) an integrator failure.
    * Truncation: the horizon (``horizon_days``, default 730) is reached alive; the
      registered ``max_episode_steps`` is the default number of intervals.

    ## Info

    ``reset`` and ``step`` return the true state behind the observation
    (:meth:`OncologyFunctional.info <oncogym.envs.functional.OncologyFunctional.info>`):
    ``day``, ``state`` (model state), ``tumour_cells``, ``toxicity`` (worst grade per
    category in the last interval) and ``worst_toxicity`` (worst so far), ``recist`` and
    ``best_response``, ``doses``, ``cumulative_doses``, ``blocked``; after death
    ``death_cause`` and ``death_day``; after an integrator failure ``error``.  After a
    step also:

    * ``reward_components``: the reward's components and the ``reward``;
    * ``cost`` (float): the number of **new grade ≥ 3 toxicities** of the interval, the
      cost signal of constrained RL (``oncogym train --algo ppo_lagrangian``).  A toxicity
      category costs 1 in the interval in which the patient's worst grade in it first
      reaches 3, 4 or 5 (some day's grade ≥ 3, every earlier grade of the episode < 3);
      so each category costs at most once per patient-episode, a toxic death (grade 5)
      counts as its category's event, and an episode's costs add up to the number of
      categories whose worst grade is ≥ 3 at its end (the per-category count of
      :func:`oncogym.clinical.grade3plus`), less any category already at grade ≥ 3 on
      day 0 (no scenario's patients have one).  The cost never enters the reward, the
      observation or the dynamics;
    * ``cost_by_category``: category → 1 for the categories that cost this step, else 0.

    The vector env stacks these dicts (for a patient replaced in the step, the finished
    episode's last info is in ``info["final_info"]``); the SB3 adapter puts ``cost`` and
    ``cost_by_category`` of the interval just lived in every env's ``infos[i]``.

    ## Arguments

    | argument | default | meaning |
    |---|---|---|
    | task | — | ``"melanoma"``, …, ``"depillis2006"``, ``"kirschner_panetta1998"`` |
    | action_mode | ``"discrete"`` | ``"discrete"`` or ``"continuous"`` |
    | observation | ``"clinical"`` | ``"clinical"`` or ``"full"`` |
    | reward | ``"qaly"`` | ``"qaly"``, ``"tumor_reduction"`` or a callable |
    | decision_days | 7 (de Pillis 1) | days per step (integer) |
    | horizon_days | 730 (prostate 1460, de Pillis 150) | episode length in days |
    | scan_noise_cv | None (0.1) | CV of a scan's diameter measurement² |
    | enforce_constraints | True | apply the clinical constraints |
    | min_dose_fraction | 0.05 | continuous actions below this are no dose |
    | reward_weights | None | overrides of the qaly weights² |
    | rtol, method | 1e-6, ``"auto"`` | integrator settings |
    | setting | ``"default"`` | a difficulty tier (below) |
    | population | None | ``"train"``: training patients even in a shifted setting³ |
    | render_mode | None | ``"rgb_array"`` or ``"ansi"`` |

    ² ``burden_weight``, ``burden_span_decades``, ``toxicity_disutility``,
    ``death_penalty_per_year`` (:mod:`oncogym.envs.task`).  ``scan_noise_cv=None`` takes the
    setting's (0.1, or 0.3 in ``"noisy"`` and ``"hard"``); a number overrides it.

    ³ ``None`` (default): the setting's population (shifted in ``"shift"`` and ``"hard"``).

    ```python
    import gymnasium as gym
    import oncogym

    env = gym.make("oncogym/Melanoma-v1", action_mode="continuous", decision_days=14)
    ```

    ## Difficulty Tiers

    ``setting=`` picks a robustness tier (:data:`oncogym.envs.settings.SETTINGS`, where
    every knob is defined and documented); ``"default"`` is this env exactly as before the
    argument existed (same observations, rewards and terminations for the same seed).
    Tiers are an argument of every id, not ids of their own:
    ``gym.make("oncogym/Melanoma-v1", setting="irregular")``.

    * ``"default"``: nothing changes;
    * ``"noisy"``: scans measured with CV 0.3 instead of 0.1;
    * ``"irregular"``: each visit after the first missed with probability 0.1 (no dose at
      that step, ``info["missed_visit"]``); each follow-up scan missed with probability
      0.1, else delayed by 0, 1 or 2 weeks with probability 0.5, 0.3, 0.2;
    * ``"missing_labs"``: each lab missing at a visit with probability 0.3 (its last value
      held) and an ``observed_<lab>`` flag per lab added to the observation;
    * ``"pkpd"``: drug clearance and kill rates (CTL, chemotherapy, CAR-T) drift within
      the patient from visit to visit (log-normal AR(1) walk, sd 0.25, weekly correlation
      0.9; scenario tasks only);
    * ``"shift"``: patients of a shifted population (baseline burden × 2, lesion
      infiltration × 0.7, lymphocyte production × 0.7; scenario tasks only);
    * ``"hard"``: all of the above at once.

    A tier's random draws come from a child of the reset's generator, so the same seed
    gives the same patient and scan noise in every tier and the same episode every time.
    A bad name raises ``ValueError`` naming the allowed ones; the literature tasks take
    ``"default"``, ``"noisy"``, ``"irregular"`` and ``"missing_labs"``.

    ## Version History

    * v1, CAR-T recalibration (``BALL-v1``, ``LBCL-v1`` only): lymphodepletion now governs
      CAR-T expansion at clinical scale (without it the infusion gives no complete response
      in LBCL; Turtle et al. 2016), both scenarios refitted.  Results on these two ids from
      before it are not comparable; the benchmark's unit keys carry each scenario's
      dynamics fingerprint, so it refuses them as stale.  The other ids are unchanged,
      number for number (``tests/test_recorded.py``).
    * v1 + ``setting``: the difficulty tiers above were added as an argument; the default
      (``setting="default"``) is v1 unchanged, number for number (``tests/test_recorded.py``),
      so the version stays v1.
    * v1: clinically validated virtual patients.  Dynamics: several lesions per patient
      (four slots; sites with their own size, CTL infiltration and lethality), death by a
      burden- and site-dependent hazard with background mortality (not only at the lethal
      burden), anti-PD-1 effect saturating with receptor occupancy at clinical doses,
      anti-CTLA-4 toxicity rising with exposure, radiotherapy to lesion 1 only; every
      scenario recalibrated on some trials and validated on others
      (``experiments/calibration/REPORT.md``).  Observations: RECIST on the target lesions
      (sum of diameters, lesions seen, new lesion, the category) added to ``"clinical"``;
      the model state of ``"full"`` has the new lesion and hazard states.  Rewards: same
      definition, different dynamics.
    * v0: initial version.  The compiled step was later rewritten on named records with
      one functional environment; observations, rewards, terminations and infos of this
      env are unchanged number for number (``tests/test_recorded.py``), and the vector
      env's info became this env's info stacked (death causes and RECIST as names).
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
        setting: str = "default",
        population: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            allowed = ", ".join(RENDER_MODES)
            raise ValueError(f"render_mode: expected None or one of {allowed}, got {render_mode!r}")
        self.functional = Fn.OncologyFunctional(
            task,
            action_mode=action_mode,
            reward=reward,
            min_dose_fraction=min_dose_fraction,
            observation=observation,
            decision_days=decision_days,
            horizon_days=horizon_days,
            scan_noise_cv=scan_noise_cv,
            enforce_constraints=enforce_constraints,
            reward_weights=reward_weights,
            rtol=rtol,
            method=method,
            setting=setting,
            population=population,
        )
        self.render_mode = render_mode
        self.action_space = self.functional.action_space
        self.observation_space = self.functional.observation_space
        self.observation_names = self.functional.observation_names
        self._patients = self.functional.allocate(1)
        self._ready = False
        self._history: list[dict[str, Any]] = []

    # --- descriptive attributes -------------------------------------------------------------
    @property
    def params(self) -> EnvParams:
        """The task's parameters (:class:`~oncogym.envs.task.EnvParams`)."""
        return self.functional.params

    @property
    def action_mode(self) -> str:
        return self.functional.action_mode

    @property
    def setting(self) -> str:
        """The difficulty tier's name (:mod:`oncogym.envs.settings`)."""
        return self.params.setting.name

    @property
    def min_dose_fraction(self) -> float:
        return self.functional.min_dose_fraction

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
    def state(self) -> K.State:
        """The patient's state, read-only (one row; fields in :class:`~._kernels.State`)."""
        return self._patients.view

    @property
    def patients(self) -> Fn.Patients:
        """The one-patient batch the functional environment steps."""
        return self._patients

    # --- Gymnasium API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        fn = self.functional
        fn.initial(self._patients, [0], fn.draw([self.np_random], options))
        self._ready = True
        info = fn.info(self._patients, 0, reset=True)
        if self.render_mode is not None:
            self._history = [self._snapshot(0.0)]
        return fn.observation(self._patients)[0].copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        if not self._ready:
            raise RuntimeError("step: call reset() before step()")
        out = self.functional.step(self._patients, np.asarray(action)[np.newaxis])
        r = float(out.reward[0])
        terminated, truncated = bool(out.terminated[0]), bool(out.truncated[0])
        if terminated or truncated:
            self._ready = False
        info = self.functional.info(self._patients, 0, reset=False, reward=r)
        if self.render_mode is not None:
            self._history.append(self._snapshot(r))
        return out.observation[0].copy(), r, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Allowed dose levels of the next step, flattened over therapies (MaskablePPO)."""
        return self.functional.action_masks(self._patients)[0].copy()

    def render(self) -> Any:
        if self.render_mode is None:
            gym.logger.warn("render: no render_mode was given to the environment")
            return None
        from . import render

        if self.render_mode == "ansi":
            return render.ansi_lines(self.params, self._history)
        return render.rgb_array(self.params, self._history)

    def _snapshot(self, reward: float) -> dict[str, Any]:
        from . import render

        return render.snapshot(self.params, self._patients, 0, reward)
