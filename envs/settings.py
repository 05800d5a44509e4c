"""Difficulty and robustness tiers of the environments (the ``setting=`` argument).

A tier changes how the clinic sees and reaches the patient, or which patients come, never
the model: ``"default"`` is the environment as it always was (same observations, rewards
and terminations for the same seed, ``tests/test_recorded.py``); each other tier turns on
some of the knobs below.  Every knob of every tier is in :data:`SETTINGS` (one
:class:`Setting` each); the table of the ``OncologyEnv`` docstring and the README's
"Robustness tiers" list the same values.

| tier | scan CV | visit missed | scan missed | delay 0/1/2 wk | lab missing | drift sd | shift |
|---|---:|---:|---:|---|---:|---:|---|
| ``default`` | 0.10 | 0 | 0 | 1/0/0 | 0 | 0 | no |
| ``noisy`` | 0.30 | 0 | 0 | 1/0/0 | 0 | 0 | no |
| ``irregular`` | 0.10 | 0.10 | 0.10 | 0.5/0.3/0.2 | 0 | 0 | no |
| ``missing_labs`` | 0.10 | 0 | 0 | 1/0/0 | 0.30 | 0 | no |
| ``pkpd`` | 0.10 | 0 | 0 | 1/0/0 | 0 | 0.25 | no |
| ``shift`` | 0.10 | 0 | 0 | 1/0/0 | 0 | 0 | yes |
| ``hard`` | 0.30 | 0.10 | 0.10 | 0.5/0.3/0.2 | 0.30 | 0.25 | yes |

What each knob does, exactly:

* **scan CV** — the coefficient of variation of each lesion's measured diameter
  (``scan_noise_cv``; the same standard-normal draws, scaled by the larger σ).
* **visit missed** — each visit after the first (step ``k >= 1``; the first visit starts
  treatment and is never missed) is missed with this probability: none of the doses the
  action asks for at that step is given (``info["doses"]`` all zero, nothing counts
  towards the constraints, ``info["missed_visit"]`` is True); the patient is still
  followed (labs, grades and scans of that interval happen as usual).  The agent is not
  told in advance; it sees the missed doses in ``days_since_<therapy>`` afterwards.
* **scan missed / delayed** — each scheduled follow-up scan (not the baseline scan at day
  0) is missed with this probability (the last scan's values are held until the next
  one); otherwise it is delayed by 0, 1 or 2 weeks with these probabilities (at most to
  the day before the next scheduled scan, so scans stay in order; a scan delayed past the
  horizon does not happen).  RECIST reads each scan on the day it is taken.
* **lab missing** — at each visit after the first, each lab (ANC, ALC) is missing with this
  probability, independently: the observation carries the last observed value, and the
  toxicity grade of that lab's category (neutropenia for ANC, lymphopenia for ALC) is also
  the last observed one.  The ``"clinical"`` observation gains one 0/1 entry per lab,
  ``observed_<lab>`` (1: measured at this visit), after the grades (so its shape grows by
  the number of labs; ``day`` stays last).  The ``"full"`` observation is the model state
  and is not changed.
* **PK/PD drift** — within-patient variability: two factors per patient, one on drug
  clearance and one on kill rates, follow a log-normal random walk pulled back to 1 (an
  AR(1) in the log, from 1 at the first visit; stationary log-sd ``sd``, correlation
  ``weekly correlation`` per week, i.e. ``corr ** (decision_days / 7)`` per visit), and
  multiply the patient's drawn parameters over each interval: clearance
  (:data:`PKPD_CLEARANCE`: anti-PD-1 and anti-CTLA-4 half-lives divided by it, IL-2 and
  chemotherapy clearance multiplied) and kill (:data:`PKPD_EFFECT`: the maximal CTL kill,
  through which the checkpoint inhibitors act — so it moves an untreated patient's immune
  control too — and the chemotherapy and CAR-T kill of tumour, multiplied).  Scenario
  tasks only.
* **population** — ``"shifted"``: patients drawn at reset are moved by :data:`SHIFT`
  (:class:`oncogym.scenarios.PopulationShift`: baseline tumour burden × 2, lesion CTL
  infiltration × 0.7, lymphocyte production × 0.7), and the evaluator's test cohort is
  ``Cohort.test(task, n, shift=SHIFT)``.  Training draws stay unshifted: the training
  cohorts never shift, and ``population="train"`` gives a shifted tier's other knobs on
  the training distribution (what ``oncogym benchmark --setting`` trains on).  Scenario
  tasks only.

Randomness: a tier's draws (visits, scans, labs, drift) come from a child of the reset's
generator (``rng.spawn``), drawn in full for every tier, so the same seed gives the same
patient and scan noise in every tier, the same missed visits in ``"irregular"`` and
``"hard"``, and the same episode every time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from oncogym.scenarios import PopulationShift

SCAN_NOISE_CV = 0.1
"""Coefficient of variation of a scan's diameter measurement (inter-reader variability)."""

NOISY_SCAN_NOISE_CV = 0.3
"""Scan CV of the ``"noisy"`` tier: three times the default, the spread of measurements by
different readers and scanners at different sites (inter-reader differences in NSCLC
lesion size large enough to change the response category of many lesions: Erasmus JJ et al.
J Clin Oncol 2003;21:2574-82; unverified)."""
VISIT_MISS_PROB = 0.1
"""Chance that a visit is missed (chosen: no-show and rescheduling rates of oncology
outpatient clinics are commonly 5-20 %; unverified)."""
SCAN_MISS_PROB = 0.1
"""Chance that a scheduled restaging scan is missed (chosen, as a missed visit)."""
SCAN_DELAY_WEEKS_PROBS = (0.5, 0.3, 0.2)
"""Chances of a scan delayed by 0, 1 or 2 weeks (chosen: trial protocols allow about a
week's window; in practice scans slip further)."""
LAB_MISSING_PROB = 0.3
"""Chance that a lab is not drawn at a visit (chosen: labs are drawn before infusions, every
2-6 weeks on checkpoint inhibitors, not at every weekly decision)."""
PKPD_SD = 0.25
"""Stationary log-sd of the clearance and kill factors (chosen: within-patient,
between-occasion variability of monoclonal-antibody clearance is about 10-30 %, and
nivolumab clearance falls by about a quarter over treatment in responders; unverified)."""
PKPD_WEEKLY_CORRELATION = 0.9
"""Week-to-week correlation of the log factors (chosen: a correlation time of about ten
weeks, between the scan interval and the horizon)."""
PKPD_CLEARANCE: dict[str, int] = {
    "pd1_half_life_d": -1,
    "ctla4_half_life_d": -1,
    "muI": 1,
    "gamma": 1,
}
"""Parameters moved by the clearance factor, with its power (−1: a half-life)."""
PKPD_EFFECT: dict[str, int] = {"d": 1, "KT": 1, "car_kill": 1}
"""Parameters moved by the kill factor: maximal CTL kill (the checkpoint inhibitors' effector),
chemotherapy and CAR-T kill of tumour."""
SHIFT = PopulationShift(burden=2.0, infiltration=0.7, immune_capacity=0.7)
"""The shifted population of the ``"shift"`` and ``"hard"`` tiers (chosen): twice the
baseline tumour burden (real-world patients, outside trial selection, start with more
disease), lesions with 30 % less CTL infiltration (colder tumours respond less to
checkpoint blockade) and 30 % less lymphocyte production (older patients:
immunosenescence).  Lower PD-L1 engagement is not used: in this model it is the
suppression anti-PD-1 lifts, so lowering it makes untreated patients do better."""

SCENARIO_ONLY = ("pkpd_sd", "shift")
"""Knobs defined on the scenario model (``oncoimmune``) only."""


@dataclass(frozen=True)
class Setting:
    """One tier's knobs (see the module docstring for what each does)."""

    name: str
    description: str
    scan_noise_cv: float = SCAN_NOISE_CV
    visit_miss_prob: float = 0.0
    scan_miss_prob: float = 0.0
    scan_delay_probs: tuple[float, ...] = (1.0,)
    """chances of a scan delayed by 0, 1, 2, … weeks"""
    lab_missing_prob: float = 0.0
    pkpd_sd: float = 0.0
    pkpd_weekly_correlation: float = 0.0
    shift: PopulationShift | None = None

    def __post_init__(self) -> None:
        where = f"setting {self.name!r}"
        _number(f"{where}: scan_noise_cv", self.scan_noise_cv, 0.0, math.inf)
        for name in ("visit_miss_prob", "scan_miss_prob", "lab_missing_prob"):
            _number(f"{where}: {name}", getattr(self, name), 0.0, 1.0, high_open=True)
        probs = self.scan_delay_probs
        if not isinstance(probs, tuple) or not probs:
            raise ValueError(f"{where}: scan_delay_probs: expected a tuple of chances")
        for q in probs:
            _number(f"{where}: scan_delay_probs", q, 0.0, 1.0)
        if not math.isclose(sum(probs), 1.0, abs_tol=1e-9):
            raise ValueError(f"{where}: scan_delay_probs: must add up to 1, got {sum(probs)}")
        _number(f"{where}: pkpd_sd", self.pkpd_sd, 0.0, math.inf)
        _number(f"{where}: pkpd_weekly_correlation", self.pkpd_weekly_correlation, 0.0, 1.0)
        if self.shift is not None:
            if not isinstance(self.shift, PopulationShift):
                raise ValueError(f"{where}: shift: expected a PopulationShift or None")
            self.shift.check()

    # --- what is on ---------------------------------------------------------------------
    @property
    def irregular(self) -> bool:
        """Visits may be missed, or scans missed or delayed."""
        return self.visit_miss_prob > 0 or self.scan_miss_prob > 0 or self.scan_delay_probs[0] < 1

    @property
    def missing_labs(self) -> bool:
        return self.lab_missing_prob > 0

    @property
    def drift(self) -> bool:
        return self.pkpd_sd > 0

    @property
    def draws(self) -> bool:
        """The tier draws per-patient randomness at reset (visits, scans, labs, drift)."""
        return self.irregular or self.missing_labs or self.drift

    def knobs(self) -> dict[str, Any]:
        """The knobs by name (JSON values; the shift as a dict or None)."""
        out = {}
        for f in fields(self):
            if f.name in ("name", "description"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, PopulationShift):
                value = value._asdict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def _number(name: str, value: Any, low: float, high: float, *, high_open: bool = False) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and low <= value
        and (value < high if high_open else value <= high)
    )
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a number in [{low:g}, {high:g}{bracket}, got {value!r}")


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("default", "the environment as before tiers (v1)"),
        Setting(
            "noisy",
            "scans measured with three times the noise",
            scan_noise_cv=NOISY_SCAN_NOISE_CV,
        ),
        Setting(
            "irregular",
            "missed visits (no dose that week), missed and delayed scans",
            visit_miss_prob=VISIT_MISS_PROB,
            scan_miss_prob=SCAN_MISS_PROB,
            scan_delay_probs=SCAN_DELAY_WEEKS_PROBS,
        ),
        Setting(
            "missing_labs",
            "labs missing at visits (last value held, an observed flag per lab)",
            lab_missing_prob=LAB_MISSING_PROB,
        ),
        Setting(
            "pkpd",
            "drug clearance and kill rates drift within the patient from visit to visit",
            pkpd_sd=PKPD_SD,
            pkpd_weekly_correlation=PKPD_WEEKLY_CORRELATION,
        ),
        Setting(
            "shift",
            "a shifted patient population (more burden, colder tumours, older immune systems)",
            shift=SHIFT,
        ),
        Setting(
            "hard",
            "every knob at once: noisy, irregular, missing labs, PK/PD drift, shifted population",
            scan_noise_cv=NOISY_SCAN_NOISE_CV,
            visit_miss_prob=VISIT_MISS_PROB,
            scan_miss_prob=SCAN_MISS_PROB,
            scan_delay_probs=SCAN_DELAY_WEEKS_PROBS,
            lab_missing_prob=LAB_MISSING_PROB,
            pkpd_sd=PKPD_SD,
            pkpd_weekly_correlation=PKPD_WEEKLY_CORRELATION,
            shift=SHIFT,
        ),
    )
}
"""Every tier by name (``setting=`` of the environments, ``--setting`` of the CLI)."""

DEFAULT_SETTING = "default"

POPULATIONS = ("train",)
"""Values of the environments' ``population`` argument besides ``None`` (the tier's own)."""


def get_setting(name: Any) -> Setting:
    """The tier ``name`` (:data:`SETTINGS`); anything else raises naming the allowed values."""
    if not isinstance(name, str) or name not in SETTINGS:
        raise ValueError(f"setting: expected one of {', '.join(SETTINGS)}, got {name!r}")
    return SETTINGS[name]


def check_population(population: Any) -> str | None:
    if population is not None and population not in POPULATIONS:
        raise ValueError(f"population: expected None or 'train', got {population!r}")
    return population


def check_task(setting: Setting, task: str, scenario_task: bool) -> None:
    """A literature task takes only the tiers that need no scenario knob."""
    if scenario_task:
        return
    used = [k for k in SCENARIO_ONLY if getattr(setting, k)]
    if used:
        ok = [s.name for s in SETTINGS.values() if not any(getattr(s, k) for k in SCENARIO_ONLY)]
        raise ValueError(
            f"setting: {setting.name!r} ({', '.join(used)}) is defined for the scenario tasks "
            f"only; the literature task {task!r} takes {', '.join(ok)}"
        )


def evaluation_shift(env_kwargs: Mapping[str, Any]) -> PopulationShift | None:
    """The population shift of the test cohort for these environment arguments (``None``:
    none), as the evaluator draws it: the setting's shift, unless ``population="train"``."""
    setting = get_setting(env_kwargs.get("setting", DEFAULT_SETTING))
    if check_population(env_kwargs.get("population")) == "train":
        return None
    return setting.shift


def training_env_kwargs(setting: str) -> dict[str, Any]:
    """The environment arguments that train on tier ``setting``: the tier, on the training
    distribution (``population="train"`` where the tier shifts the population)."""
    s = get_setting(setting)
    if s.name == DEFAULT_SETTING:
        return {}
    out: dict[str, Any] = {"setting": s.name}
    if s.shift is not None:
        out["population"] = "train"
    return out


# --- draws ------------------------------------------------------------------------------------
class TierDraws(NamedTuple):
    """One reset's tier draws for ``n`` patients (arrays of width 0 where the knob is off)."""

    scan_offset: np.ndarray
    """``(n, n_scans)`` days added to each scheduled scan (``inf``: missed)"""
    visit_missed: np.ndarray
    """``(n, n_steps)`` bool, the visit of step ``k`` missed"""
    lab_missing: np.ndarray
    """``(n, n_steps + 1, n_labs)`` bool, the lab missing at the observation after step
    ``k - 1`` (column 0: the reset's, never missing)"""
    drift: np.ndarray
    """``(n, n_steps, n_drift)`` factors on the drifted parameters over step ``k``"""


def widths(params: Any) -> dict[str, tuple[int, ...]]:
    """Per-patient shapes of the tier arrays of ``params`` (0 where the knob is off)."""
    s = params.setting
    n_scans = len(params.scan_days)
    n_labs = len(params.lab_names)
    n_steps = params.n_steps
    return {
        "scan_offset": (n_scans if s.irregular else 0,),
        "visit_missed": (n_steps if s.irregular else 0,),
        "lab_missing": (n_steps + 1 if s.missing_labs else 0, n_labs),
        "drift": (n_steps if s.drift else 0, len(params.drift_index)),
    }


def no_draws(params: Any, n: int) -> TierDraws:
    """Tier arrays that change nothing (no delay, no missed visit or lab, no drift)."""
    w = widths(params)
    return TierDraws(
        np.zeros((n, *w["scan_offset"])),
        np.zeros((n, *w["visit_missed"]), dtype=np.bool_),
        np.zeros((n, *w["lab_missing"]), dtype=np.bool_),
        np.ones((n, *w["drift"])),
    )


def draw(params: Any, rngs: list[np.random.Generator]) -> TierDraws:
    """The tier draws of one reset, one patient per generator (see the module docstring).

    Each patient's draws come from ``rng.spawn(1)[0]`` (the reset's generator itself is not
    advanced), always the same numbers in the same order: scans ``(n_scans, 2)`` uniforms
    (missed, delay), visits ``n_steps`` uniforms, labs ``(n_steps + 1, n_labs)`` uniforms,
    drift ``(n_steps, 2)`` standard normals (clearance, kill).
    """
    s = params.setting
    out = no_draws(params, len(rngs))
    scan_days = np.asarray(params.scan_days, dtype=np.float64)
    n_scans, n_steps, n_labs = len(scan_days), params.n_steps, len(params.lab_names)
    gap = np.append(np.diff(scan_days), np.inf)  # days to the next scheduled scan
    cum = np.cumsum(s.scan_delay_probs)
    rho = s.pkpd_weekly_correlation ** (params.decision_days / 7.0)
    innovation = s.pkpd_sd * math.sqrt(max(1.0 - rho * rho, 0.0))
    for j, rng in enumerate(rngs):
        g = rng.spawn(1)[0]
        u_scan = g.random((n_scans, 2))
        u_visit = g.random(n_steps)
        u_lab = g.random((n_steps + 1, n_labs))
        z = g.standard_normal((n_steps, 2))
        if s.irregular:
            weeks = np.minimum(np.searchsorted(cum, u_scan[:, 1], side="right"), len(cum) - 1)
            offset = np.minimum(7.0 * weeks, np.maximum(gap - 1.0, 0.0))
            offset[u_scan[:, 0] < s.scan_miss_prob] = np.inf
            first = scan_days <= 1e-9  # the baseline scan is never moved
            offset[first] = 0.0
            out.scan_offset[j] = offset
            out.visit_missed[j] = u_visit < s.visit_miss_prob
            out.visit_missed[j, 0] = False
        if s.missing_labs:
            out.lab_missing[j] = u_lab < s.lab_missing_prob
            out.lab_missing[j, 0] = False
        if s.drift:
            logf = np.zeros((n_steps, 2))
            for k in range(1, n_steps):
                logf[k] = rho * logf[k - 1] + innovation * z[k]
            out.drift[j] = np.exp(logf[:, params.drift_walk] * params.drift_power[None, :])
    return out
