"""Environment parameters: what a task is, as data (gymnax style: params apart from state).

:class:`EnvParams` holds everything the functional environment
(:mod:`oncogym.envs.functional`) needs — the model, the therapy menu with dose levels and
delivery patterns, the clinical constraints, the scan schedule, toxicity grading, the
reward weights, the integrator settings and the virtual-patient sampler;
``EnvParams.kernel_task`` is the same as the compiled kernels read it.  :func:`make_params`
builds it for a scenario of :mod:`oncogym.scenarios` (``"melanoma"``, ``"nsclc"``, …) or
for a literature task (``"depillis2006"``, ``"kirschner_panetta1998"``).

Adapters that live here because the scenario files do not (yet) carry them:

* **delivery patterns** (what a dose level means over one decision interval):
  radiotherapy = one fraction on each weekday of the interval; lymphodepletion = a course
  of :data:`LYMPHODEPLETION_COURSE_DAYS` consecutive days; CAR-T = one infusion, given
  :data:`CAR_T_GAP_DAYS` days after a lymphodepletion course of the same interval (day 5
  after a 3-day course, the label timing) or on the interval's first day otherwise;
  every other therapy = one administration on the interval's first day;
* **default constraints** added where a scenario is silent: CAR-T at most once; anti-PD-1
  no closer than 14 days and anti-CTLA-4 no closer than 21 days (label intervals);
* **treatment burden** (:data:`ADMINISTRATION_DISUTILITY_DAYS`): days of full health lost
  per administration (infusion visits, inpatient stays) — a chosen, documented QALY term;
* **standard of care** per scenario (:data:`STANDARD_OF_CARE`): the protocol that the
  reward tests compare policies against.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from oncogym import integrate, models, rules, toxicity
from oncogym.models.base import Model
from oncogym.simulate import DEFAULT_MAX_STEPS

from . import _kernels as K
from . import settings as S
from .settings import SCAN_NOISE_CV as SCAN_NOISE_CV  # re-exported: the default scan CV
from .settings import Setting

# --- adapters (see the module docstring) --------------------------------------------------
LYMPHODEPLETION_COURSE_DAYS = 3
"""Fludarabine/cyclophosphamide course length (days −5…−3 before CAR-T, as in ZUMA-1)."""
CAR_T_GAP_DAYS = 2
"""Days between the end of a lymphodepletion course and the CAR-T infusion (label: day 0
is two days after the last conditioning day)."""
DEFAULT_MIN_INTERVAL_DAYS = {"anti_pd1": 14.0, "anti_ctla4": 21.0}
"""Label dosing intervals used where a scenario gives none (nivolumab q2w, ipilimumab q3w)."""
DEFAULT_MAX_ADMINISTRATIONS = {"car_t": 1}
"""CAR-T is a single infusion."""
ADMINISTRATION_DISUTILITY_DAYS = {
    "anti_pd1": 0.5,
    "anti_ctla4": 0.5,
    "chemo": 2.0,
    "il2": 5.0,
    "til": 5.0,
    "vaccine": 1.0,
    "car_t": 14.0,
    "lymphodepletion": 0.5,
    "radiotherapy": 0.1,
    "aci": 1.0,
}
"""Days of full health lost per administration (chosen): an outpatient infusion half a day;
a chemotherapy cycle two days (infusion and malaise); high-dose IL-2 and TIL about five
inpatient days; a CAR-T infusion two weeks of inpatient monitoring; a radiotherapy fraction
a tenth of a day; a sipuleucel-T infusion (with leukapheresis) one day."""
STANDARD_OF_CARE = {
    "melanoma": "nivolumab_ipilimumab",
    "nsclc": "pembrolizumab_chemotherapy",
    "rcc": "nivolumab_ipilimumab",
    "prostate": "sipuleucel_t_then_docetaxel",
    "b_all": "tisagenlecleucel",
    "lbcl": "axicabtagene_ciloleucel",
}
"""The standard-of-care protocol of each scenario (a key of ``Scenario.protocols``).

Where guidelines offer more than one first-line standard and the trials and the calibrated
model rate one clearly higher, that one: in PD-L1-high NSCLC both pembrolizumab alone
(KEYNOTE-024) and pembrolizumab with platinum chemotherapy (KEYNOTE-189/407) are preferred
options; chemo-immunotherapy has the higher pooled survival (FDA pooled analysis, OS HR
0.82), so agents and exploit checks are compared against it.  Where the episode spans more
than one line of therapy, the standard is the clinical pathway: in mCRPC (four-year
horizon) sipuleucel-T for asymptomatic or minimally symptomatic disease, then docetaxel
(IMPACT patients received docetaxel after the study therapy; TAX 327), the two given in
sequence because a cellular vaccine given with docetaxel adds nothing to it (VIABLE,
calibrated).  The docetaxel start is fixed at the first restaging scan (week 12); the
adaptive baseline starts it at measured progression instead."""

_DELIVERY = {
    "radiotherapy": K.FRACTIONS,
    "lymphodepletion": K.COURSE,
    "car_t": K.AFTER_COURSE,
}

# --- default reward weights --------------------------------------------------------------
BURDEN_WEIGHT = 0.3
"""Utility lost at a lethal tumour burden (progressive metastatic disease ≈ 0.6–0.7 utility)."""
BURDEN_SPAN_DECADES = 3.0
"""The burden term rises linearly in log10(cells) over this many decades below lethal."""
TOXICITY_DISUTILITY = (0.0, 0.02, 0.05, 0.15, 0.3, 1.0)
"""Utility lost per category while at grade 0–5 (grade 5 is death)."""
DEATH_PENALTY_PER_YEAR = 1.0
"""Charged once at death: years of life lost before the horizon × this weight."""

ENV_RTOL = 1e-6
"""Relative tolerance of the environments' integration: looser, on purpose, than the
core's default (:data:`oncogym.simulate.DEFAULT_RTOL`, 1e-8, for reproducing the
literature): an env reads its patient through scans with 10 % noise, and every
decimal of tolerance costs integration steps.  ``rtol=`` overrides it."""

DEPILLIS_ALC_VOLUME_L = 31.25
"""Litres that turn de Pillis' circulating lymphocytes C (cells) into an ALC (cells/L): the
model's homeostatic C* = α/β = 7.5e8 / 1.2e-2 = 6.25e10 cells reads as a normal ALC of
2.0e9/L (the same mapping as ``oncoimmune``'s ``alc_volume_l``)."""

TASKS = ("melanoma", "nsclc", "rcc", "prostate", "b_all", "lbcl")
"""Scenario tasks (oncoimmune); the literature tasks are in :data:`LITERATURE_TASKS`."""


class PatientSampler:
    """Draws virtual patients: ``sample(rng, n) -> (P, Y0)`` (parameter and state rows)."""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class ScenarioSampler(PatientSampler):
    """The training distribution of a scenario (:func:`oncogym.scenarios.sample_patients`),
    moved by ``shift`` (a :class:`oncogym.scenarios.PopulationShift`) when one is given."""

    def __init__(self, scenario: Any, shift: Any = None) -> None:
        self.scenario = scenario
        self.shift = shift

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        from oncogym.scenarios import sample_patients

        return sample_patients(self.scenario, rng, n, shift=self.shift)


class LogNormalSampler(PatientSampler):
    """Parameters and initial states log-normal around a model's defaults.

    :param model_name: a registered model
    :param params: ``name -> (median, cv, low, high)`` for the varied parameters
    :param initial: the same for initial states
    :param fixed_state: initial states that do not vary (overrides of the model default)
    """

    def __init__(
        self,
        model_name: str,
        params: Mapping[str, tuple[float, float, float, float]],
        initial: Mapping[str, tuple[float, float, float, float]],
        fixed_state: Mapping[str, float] | None = None,
    ) -> None:
        self.model_name = model_name
        self.params = dict(params)
        self.initial = dict(initial)
        self.fixed_state = dict(fixed_state or {})

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        m = models.get(self.model_name)
        z = rng.standard_normal((n, len(self.params) + len(self.initial)))
        P = np.tile(m.params_array(), (n, 1))
        Y0 = np.tile(m.state_array(self.fixed_state), (n, 1))
        for j, (name, spec) in enumerate([*self.params.items(), *self.initial.items()]):
            median, cv, low, high = spec
            x = np.clip(median * np.exp(math.sqrt(math.log1p(cv * cv)) * z[:, j]), low, high)
            if j < len(self.params):
                P[:, m.param_names.index(name)] = x
            else:
                Y0[:, m.state_names.index(name)] = x
        return P, Y0


@dataclass(frozen=True, eq=False)
class EnvParams:
    """Everything that defines a task; arrays are read-only inputs of the kernels.

    Built by :func:`make_params`; per-therapy arrays follow :attr:`therapies`.
    """

    name: str
    title: str
    model_name: str
    therapies: tuple[str, ...]
    therapy_units: tuple[str, ...]
    dose_levels: tuple[tuple[float, ...], ...]
    tx_model: np.ndarray
    tx_kind: np.ndarray
    level_table: np.ndarray
    n_levels: np.ndarray
    max_level: np.ndarray
    min_interval_days: np.ndarray
    """Minimum days since the last dose, per therapy and dose level (``level_table``'s shape)."""
    max_cumulative: np.ndarray
    max_administrations: np.ndarray
    admin_days: np.ndarray
    course_days: int
    gap_days: int
    enforce_constraints: bool
    decision_days: int
    horizon_days: float
    scan_days: np.ndarray
    scan_sigma: float
    cr_threshold_mm: float
    cells_per_cm3: float
    lethal_cells: float
    tumour_index: np.ndarray
    lesion_index: np.ndarray
    """``(n_lesions, 2)`` states of each lesion (T⁺, T⁻; −1: none)"""
    measurable_site: np.ndarray
    hazard_state: int
    hazard_param: int
    tox_categories: tuple[str, ...]
    tox_state: np.ndarray
    tox_param: np.ndarray
    tox_scale: np.ndarray
    tox_thresholds: np.ndarray
    tox_below: np.ndarray
    tox_fatal: np.ndarray
    lab_names: tuple[str, ...]
    lab_units: tuple[str, ...]
    lab_state: np.ndarray
    lab_param: np.ndarray
    lab_scale: np.ndarray
    burden_weight: float
    burden_lo: float
    burden_span: float
    tox_disutility: np.ndarray
    death_weight: float
    observation: str
    rtol: float
    method: int
    max_steps: int
    sampler: PatientSampler
    scenario: Any = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    setting: Setting = S.SETTINGS[S.DEFAULT_SETTING]
    """the difficulty tier (:mod:`oncogym.envs.settings`)"""
    population_shift: Any = None
    """the :class:`~oncogym.scenarios.PopulationShift` of the patients drawn at reset (None:
    the training distribution)"""
    drift_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """parameters the tier's PK/PD drift moves (empty: none)"""
    drift_walk: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """per drifted parameter, its factor: 0 clearance, 1 kill"""
    drift_power: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """per drifted parameter, the power of its factor (−1: a half-life)"""

    @property
    def model(self) -> Model:
        return models.get(self.model_name)

    @property
    def n_therapies(self) -> int:
        return len(self.therapies)

    @property
    def n_lesions(self) -> int:
        """Lesion slots of the model (one for the literature tasks)."""
        return int(self.lesion_index.shape[0])

    @property
    def n_steps(self) -> int:
        """Decision intervals in an episode (the last one is shortened to the horizon)."""
        return math.ceil(self.horizon_days / self.decision_days - 1e-9)

    @property
    def max_out(self) -> int:
        """Output times per interval (daily, both ends)."""
        return self.decision_days + 1

    @property
    def max_events(self) -> int:
        return max(1, self.n_therapies * self.decision_days)

    @property
    def obs_mode(self) -> int:
        return K.OBS_CLINICAL if self.observation == "clinical" else K.OBS_FULL

    @property
    def lab_flags(self) -> bool:
        """The clinical observation holds missing labs and carries an observed flag per lab."""
        return self.setting.missing_labs and self.obs_mode == K.OBS_CLINICAL

    @property
    def grade_lab(self) -> np.ndarray:
        """Per toxicity category, the lab it is graded from (−1: none): held with the lab."""
        out = np.full(len(self.tox_categories), -1, dtype=np.int64)
        for c in range(len(self.tox_categories)):
            for i in range(len(self.lab_names)):
                same_param = self.tox_param[c] == self.lab_param[i]
                if self.tox_state[c] == self.lab_state[i] and same_param:
                    out[c] = i
        return out

    @property
    def cum_cap(self) -> np.ndarray:
        """Bound of each cumulative-dose observation (in maximum-dose units)."""
        per = np.array(
            [
                self.decision_days
                if k in (K.FRACTIONS, K.INFUSION)
                else (self.course_days if k == K.COURSE else 1)
                for k in self.tx_kind
            ],
            dtype=np.float64,
        )
        return per * self.n_steps

    @property
    def days_cap(self) -> float:
        return float(self.horizon_days + self.decision_days)

    @property
    def atol(self) -> np.ndarray:
        return self.model.atol

    @property
    def floor(self) -> np.ndarray:
        return self.model.floor

    @cached_property
    def solver(self) -> integrate.Solver:
        """The integrator settings of the compiled step."""
        return integrate.Solver(self.method, self.rtol, self.atol, self.floor, self.max_steps)

    @cached_property
    def kernel_task(self) -> K.Task:
        """These parameters as the compiled kernels read them (:class:`~._kernels.Task`)."""
        return K.Task(
            therapy_index=self.tx_model,
            delivery=self.tx_kind,
            dose_levels=self.level_table,
            n_levels=self.n_levels,
            max_level=self.max_level,
            min_interval_days=self.min_interval_days,
            max_cumulative=self.max_cumulative,
            max_administrations=self.max_administrations,
            admin_days=self.admin_days,
            course_days=self.course_days,
            gap_days=self.gap_days,
            enforce_constraints=self.enforce_constraints,
            decision_days=self.decision_days,
            horizon_days=self.horizon_days,
            tumour_index=self.tumour_index,
            lesion_index=self.lesion_index,
            measurable_site=self.measurable_site,
            hazard_state=self.hazard_state,
            hazard_param=self.hazard_param,
            lethal_cells=self.lethal_cells,
            scan_days=self.scan_days,
            scan_sigma=self.scan_sigma,
            cr_threshold_mm=self.cr_threshold_mm,
            cells_per_cm3=self.cells_per_cm3,
            tox_state=self.tox_state,
            tox_param=self.tox_param,
            tox_scale=self.tox_scale,
            tox_thresholds=self.tox_thresholds,
            tox_below=self.tox_below,
            tox_fatal=self.tox_fatal,
            fatal_anc=toxicity.NEUTROPENIA_FATAL_ANC_PER_L,
            fatal_days=toxicity.NEUTROPENIA_FATAL_DAYS,
            tox_disutility=self.tox_disutility,
            burden_weight=self.burden_weight,
            burden_lo=self.burden_lo,
            burden_span=self.burden_span,
            death_weight=self.death_weight,
            obs_mode=self.obs_mode,
            lab_state=self.lab_state,
            lab_param=self.lab_param,
            lab_scale=self.lab_scale,
            cum_cap=self.cum_cap,
            days_cap=self.days_cap,
            full_cap=FULL_OBS_CAP,
            lab_flags=self.lab_flags,
            grade_lab=self.grade_lab,
            drift_index=self.drift_index,
        )


FULL_OBS_CAP = 20.0
"""Upper bound of a log10(1 + state) entry of the ``"full"`` observation (clipped)."""

_OBS_MODES = ("clinical", "full")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    ok_type = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
        kind = "a positive integer" if integer else "a finite number"
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return int(value) if integer else float(value)


def _tox_arrays(
    m: Model, categories: Mapping[str, toxicity.Category], scale: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The grading arrays of ``categories`` (:data:`oncogym.toxicity.GRADING` entries)."""
    n = len(categories)
    out = {
        "tox_categories": tuple(categories),
        "tox_state": np.zeros(n, dtype=np.int64),
        "tox_param": np.full(n, -1, dtype=np.int64),
        "tox_scale": np.ones(n),
        "tox_below": np.zeros(n, dtype=np.bool_),
        "tox_fatal": np.zeros(n, dtype=np.bool_),
        "tox_thresholds": np.empty((n, 5)),
    }
    for i, (name, cat) in enumerate(categories.items()):
        out["tox_state"][i] = m.state_names.index(cat.state)
        if cat.per_param is not None:
            out["tox_param"][i] = m.param_names.index(cat.per_param)
        out["tox_scale"][i] = (scale or {}).get(name, 1.0)
        out["tox_below"][i] = cat.below
        out["tox_fatal"][i] = cat.fatal_run
        out["tox_thresholds"][i] = -np.inf if cat.below else np.inf
        out["tox_thresholds"][i, : len(cat.thresholds)] = cat.thresholds
    return out


def _levels(therapies: tuple[str, ...], dose_levels: Mapping[str, Any]) -> dict[str, Any]:
    levels = tuple(tuple(float(x) for x in dose_levels[t]) for t in therapies)
    width = max(len(lv) for lv in levels)
    table = np.zeros((len(therapies), width))
    for k, lv in enumerate(levels):
        table[k, : len(lv)] = lv
        table[k, len(lv) :] = lv[-1]
    return {
        "dose_levels": levels,
        "level_table": table,
        "n_levels": np.array([len(lv) for lv in levels], dtype=np.int64),
        "max_level": np.array([lv[-1] for lv in levels]),
    }


def _interval_table(
    therapies: tuple[str, ...],
    dose_levels: Mapping[str, Any],
    min_interval: Mapping[str, Any],
) -> np.ndarray:
    """Minimum days between doses per therapy and dose level, laid out like ``level_table``.

    A number applies to every level; a mapping gives each nonzero level its own interval
    (label intervals: pembrolizumab 200 mg q3w, 400 mg q6w).
    """
    width = max(len(dose_levels[t]) for t in therapies)
    table = np.zeros((len(therapies), width))
    for k, t in enumerate(therapies):
        spec = min_interval.get(t, DEFAULT_MIN_INTERVAL_DAYS.get(t, 0.0))
        levels = [float(x) for x in dose_levels[t]]
        if isinstance(spec, Mapping):
            given = {float(a): float(d) for a, d in spec.items()}
            row = [given.get(a, 0.0) if a > 0 else 0.0 for a in levels]
        else:
            row = [float(spec)] * len(levels)
        table[k, : len(row)] = row
        table[k, len(row) :] = row[-1]
    return table


def _constraints(
    therapies: tuple[str, ...],
    dose_levels: Mapping[str, Any],
    min_interval: Mapping[str, Any],
    max_cumulative: Mapping[str, float],
    max_administrations: Mapping[str, int],
) -> dict[str, np.ndarray]:
    big = np.iinfo(np.int64).max // 4
    return {
        "min_interval_days": _interval_table(therapies, dose_levels, min_interval),
        "max_cumulative": np.array([float(max_cumulative.get(t, np.inf)) for t in therapies]),
        "max_administrations": np.array(
            [
                int(max_administrations.get(t, DEFAULT_MAX_ADMINISTRATIONS.get(t, big)))
                for t in therapies
            ],
            dtype=np.int64,
        ),
    }


def _common(
    *,
    observation: str,
    decision_days: Any,
    horizon_days: Any,
    scan_noise_cv: Any,
    rtol: Any,
    method: str,
    enforce_constraints: bool,
    reward_weights: Mapping[str, Any] | None,
    lethal_cells: float,
) -> dict[str, Any]:
    _check_choice("observation", observation, _OBS_MODES)
    dd = _positive("decision_days", decision_days, integer=True)
    hd = _positive("horizon_days", horizon_days)
    cv = _positive("scan_noise_cv", scan_noise_cv, allow_zero=True)
    r = _positive("rtol", rtol)
    if not r < 1:
        raise ValueError(f"rtol: must be in (0, 1), got {r}")
    _check_choice("method", method, tuple(integrate.METHODS))
    if not isinstance(enforce_constraints, (bool, np.bool_)):
        raise ValueError(f"enforce_constraints: expected a bool, got {enforce_constraints!r}")
    weights = {
        "burden_weight": BURDEN_WEIGHT,
        "burden_span_decades": BURDEN_SPAN_DECADES,
        "toxicity_disutility": TOXICITY_DISUTILITY,
        "death_penalty_per_year": DEATH_PENALTY_PER_YEAR,
    }
    for key, value in (reward_weights or {}).items():
        if key not in weights:
            raise ValueError(f"reward_weights: unknown key {key!r}; allowed: {', '.join(weights)}")
        weights[key] = value
    dis = np.asarray(weights["toxicity_disutility"], dtype=np.float64)
    if dis.shape != (6,) or not np.all(np.isfinite(dis)) or np.any(dis < 0):
        raise ValueError(
            "reward_weights['toxicity_disutility']: six finite values >= 0 (grades 0-5)"
        )
    return {
        "observation": observation,
        "decision_days": dd,
        "horizon_days": hd,
        "scan_sigma": math.sqrt(math.log1p(cv * cv)),
        "rtol": r,
        "method": integrate.METHODS[method],
        "max_steps": DEFAULT_MAX_STEPS,
        "enforce_constraints": bool(enforce_constraints),
        "burden_weight": _positive(
            "reward_weights['burden_weight']", weights["burden_weight"], allow_zero=True
        ),
        "burden_lo": math.log10(lethal_cells)
        - _positive("reward_weights['burden_span_decades']", weights["burden_span_decades"]),
        "burden_span": float(weights["burden_span_decades"]),
        "tox_disutility": dis,
        "death_weight": _positive(
            "reward_weights['death_penalty_per_year']",
            weights["death_penalty_per_year"],
            allow_zero=True,
        ),
    }


def _drift(m: Model, tier: Setting) -> dict[str, np.ndarray]:
    """The drifted parameters of ``tier`` on model ``m`` (empty without PK/PD drift)."""
    if not tier.drift:
        return {}
    spec = [(name, 0, power) for name, power in S.PKPD_CLEARANCE.items()]
    spec += [(name, 1, power) for name, power in S.PKPD_EFFECT.items()]
    return {
        "drift_index": np.array([m.param_names.index(n) for n, _, _ in spec], dtype=np.int64),
        "drift_walk": np.array([w for _, w, _ in spec], dtype=np.int64),
        "drift_power": np.array([pw for _, _, pw in spec], dtype=np.float64),
    }


def scenario_params(
    name: str,
    *,
    observation: str = "clinical",
    decision_days: int = 7,
    horizon_days: float | None = None,
    scan_noise_cv: float | None = None,
    rtol: float = ENV_RTOL,
    method: str = "auto",
    enforce_constraints: bool = True,
    reward_weights: Mapping[str, Any] | None = None,
    setting: str = S.DEFAULT_SETTING,
    population: str | None = None,
) -> EnvParams:
    """:class:`EnvParams` of a scenario of :mod:`oncogym.scenarios` (see :func:`make_params`)."""
    from oncogym.scenarios import lesion_slots, load_scenario

    tier = S.get_setting(setting)
    S.check_population(population)
    sc = load_scenario(name)
    m = models.get(sc.model)
    if m.name != "oncoimmune":
        raise ValueError(f"task: scenario {name!r} uses model {m.name!r}; envs need oncoimmune")
    therapies = tuple(sc.therapies)
    horizon = sc.horizon_days if horizon_days is None else horizon_days
    shift = None if population == "train" else tier.shift
    common = _common(
        observation=observation,
        decision_days=decision_days,
        horizon_days=horizon,
        scan_noise_cv=tier.scan_noise_cv if scan_noise_cv is None else scan_noise_cv,
        rtol=rtol,
        method=method,
        enforce_constraints=enforce_constraints,
        reward_weights=reward_weights,
        lethal_cells=sc.lethal_cells,
    )
    pn = m.param_names
    slots = lesion_slots(m)
    return EnvParams(
        name=sc.name,
        title=sc.title,
        model_name=m.name,
        therapies=therapies,
        therapy_units=tuple(m.therapies[m.therapy_index(t)].unit for t in therapies),
        tx_model=np.array([m.therapy_index(t) for t in therapies], dtype=np.int64),
        tx_kind=np.array([_DELIVERY.get(t, K.BOLUS) for t in therapies], dtype=np.int64),
        admin_days=np.array([ADMINISTRATION_DISUTILITY_DAYS.get(t, 0.0) for t in therapies]),
        course_days=LYMPHODEPLETION_COURSE_DAYS,
        gap_days=CAR_T_GAP_DAYS,
        scan_days=sc.scan_schedule(float(common["horizon_days"])).astype(np.float64),
        cr_threshold_mm=float(sc.cr_threshold_mm),
        cells_per_cm3=rules.CELLS_PER_CM3,
        lethal_cells=float(sc.lethal_cells),
        tumour_index=np.array([m.state_names.index(x) for pair in slots for x in pair]),
        lesion_index=np.array(
            [[m.state_names.index(tp), m.state_names.index(tn)] for tp, tn in slots],
            dtype=np.int64,
        ),
        measurable_site=sc.measurable_sites(),
        hazard_state=m.state_names.index("Hz"),
        hazard_param=pn.index("death_threshold"),
        lab_names=("ANC", "ALC"),
        lab_units=("cells/L", "cells/L"),
        lab_state=np.array([m.state_names.index("ANC"), m.state_names.index("C")]),
        lab_param=np.array([-1, pn.index("alc_volume_l")], dtype=np.int64),
        lab_scale=np.ones(2),
        sampler=ScenarioSampler(sc, shift),
        scenario=sc,
        setting=tier,
        population_shift=shift,
        **_drift(m, tier),
        **_levels(therapies, sc.dose_levels),
        **_constraints(
            therapies,
            sc.dose_levels,
            sc.min_interval_days,
            sc.max_cumulative,
            sc.max_administrations,
        ),
        **_tox_arrays(m, toxicity.GRADING),
        **common,
    )


# --- literature tasks ------------------------------------------------------------------------
LITERATURE_TASKS: dict[str, dict[str, Any]] = {
    "depillis2006": {
        "title": "de Pillis, Gu & Radunskaya 2006: chemotherapy, IL-2 and TIL (patient 9)",
        "model": "depillis2006",
        "therapies": ("chemo", "il2", "til"),
        # infusion rates per day (the paper's v_M, v_I, v_L)
        "dose_levels": {
            "chemo": (0.0, 1.0, 2.5, 5.0),
            "il2": (0.0, 5e5, 1e6),
            "til": (0.0, 1e9),
        },
        "delivery": K.INFUSION,
        "admin_days": {"chemo": 0.0, "il2": 0.0, "til": 0.0},
        "max_cumulative": {},
        "max_administrations": {},
        "min_interval_days": {},
        "sampler": LogNormalSampler(
            "depillis2006",
            params={
                "a": (0.431, 0.2, 0.1, 1.0),
                "c": (6.41e-11, 0.2, 0.0, 1.0),
                "d": (2.34, 0.2, 0.1, 10.0),
                "l": (2.09, 0.1, 1.0, 4.0),
                "s": (8.39e-2, 0.2, 1e-3, 1.0),
                "KT": (0.9, 0.3, 0.05, 5.0),
                "alpha": (7.5e8, 0.2, 1e8, 5e9),
            },
            initial={"T": (1e7, 1.0, 1e6, 1e8)},
        ),
        "lethal_cells": 5e8,
        "tumour": ("T",),
        "labs": (("ALC", "C", 1.0 / DEPILLIS_ALC_VOLUME_L),),
        "toxicity": ("lymphopenia", "C", 1.0 / DEPILLIS_ALC_VOLUME_L),
        "scan_interval_days": 7.0,
        "decision_days": 1,
        "horizon_days": 150.0,
    },
    "kirschner_panetta1998": {
        "title": "Kirschner & Panetta 1998: adoptive cellular immunotherapy and IL-2",
        "model": "kirschner_panetta1998",
        "therapies": ("aci", "il2"),
        # constant infusions over the interval (the paper's s1 cells/day, s2 units/day)
        "dose_levels": {"aci": (0.0, 300.0, 600.0, 1000.0), "il2": (0.0, 1e5, 1e6)},
        "delivery": K.INFUSION,
        "admin_days": {"aci": 1.0, "il2": 1.0},
        "max_cumulative": {},
        "max_administrations": {},
        "min_interval_days": {},
        "sampler": LogNormalSampler(
            "kirschner_panetta1998",
            params={"c": (0.02, 0.5, 1e-4, 0.05), "r2": (0.18, 0.2, 0.05, 0.5)},
            initial={"T": (1e5, 1.0, 1e3, 1e8)},
        ),
        "lethal_cells": 9e8,
        "tumour": ("T",),
        "labs": (),
        "toxicity": None,
        "scan_interval_days": 28.0,
        "decision_days": 7,
        "horizon_days": 730.0,
    },
}
"""Literature tasks.  Patients vary log-normally around the published parameters (de Pillis
2006 patient 9; Kirschner–Panetta with antigenicity c spread over the paper's range 0–0.05)
with the tumour burden at the start; values and spreads are chosen, documented here."""


def literature_params(
    name: str,
    *,
    observation: str = "clinical",
    decision_days: int | None = None,
    horizon_days: float | None = None,
    scan_noise_cv: float | None = None,
    rtol: float = ENV_RTOL,
    method: str = "auto",
    enforce_constraints: bool = True,
    reward_weights: Mapping[str, Any] | None = None,
    setting: str = S.DEFAULT_SETTING,
    population: str | None = None,
) -> EnvParams:
    """:class:`EnvParams` of a literature task (see :data:`LITERATURE_TASKS`); the tiers
    with PK/PD drift or a population shift are for the scenario tasks only."""
    tier = S.get_setting(setting)
    S.check_population(population)
    S.check_task(tier, name, scenario_task=False)
    spec = LITERATURE_TASKS[name]
    m = models.get(spec["model"])
    therapies = tuple(spec["therapies"])
    common = _common(
        observation=observation,
        decision_days=spec["decision_days"] if decision_days is None else decision_days,
        horizon_days=spec["horizon_days"] if horizon_days is None else horizon_days,
        scan_noise_cv=tier.scan_noise_cv if scan_noise_cv is None else scan_noise_cv,
        rtol=rtol,
        method=method,
        enforce_constraints=enforce_constraints,
        reward_weights=reward_weights,
        lethal_cells=spec["lethal_cells"],
    )
    horizon = common["horizon_days"]
    scans = np.arange(0.0, horizon + 1e-9, spec["scan_interval_days"])
    tox_spec = spec["toxicity"]
    if tox_spec is None:
        tox = _tox_arrays(m, {})
    else:
        cat, state, scale = tox_spec
        rule = toxicity.GRADING[cat]._replace(state=state, per_param=None)
        tox = _tox_arrays(m, {cat: rule}, {cat: scale})
    labs = spec["labs"]
    return EnvParams(
        name=name,
        title=spec["title"],
        model_name=m.name,
        therapies=therapies,
        therapy_units=tuple(m.therapies[m.therapy_index(t)].unit + "/day" for t in therapies),
        tx_model=np.array([m.therapy_index(t) for t in therapies], dtype=np.int64),
        tx_kind=np.full(len(therapies), spec["delivery"], dtype=np.int64),
        admin_days=np.array([spec["admin_days"].get(t, 0.0) for t in therapies]),
        course_days=LYMPHODEPLETION_COURSE_DAYS,
        gap_days=CAR_T_GAP_DAYS,
        scan_days=scans,
        cr_threshold_mm=1e-3,
        cells_per_cm3=rules.CELLS_PER_CM3,
        lethal_cells=float(spec["lethal_cells"]),
        tumour_index=np.array([m.state_names.index(s) for s in spec["tumour"]]),
        lesion_index=np.array(
            [[m.state_names.index(s) for s in spec["tumour"]] + [-1] * (2 - len(spec["tumour"]))],
            dtype=np.int64,
        ),
        measurable_site=np.ones(1, dtype=np.bool_),
        hazard_state=-1,
        hazard_param=-1,
        lab_names=tuple(lab[0] for lab in labs),
        lab_units=tuple("cells/L" for _ in labs),
        lab_state=np.array([m.state_names.index(lab[1]) for lab in labs], dtype=np.int64),
        lab_param=np.full(len(labs), -1, dtype=np.int64),
        lab_scale=np.array([lab[2] for lab in labs], dtype=np.float64),
        sampler=spec["sampler"],
        setting=tier,
        **_levels(therapies, spec["dose_levels"]),
        **_constraints(
            therapies,
            spec["dose_levels"],
            spec["min_interval_days"],
            spec["max_cumulative"],
            spec["max_administrations"],
        ),
        **tox,
        **common,
    )


def make_params(task: str, **kwargs: Any) -> EnvParams:
    """:class:`EnvParams` for ``task``: a scenario name (:data:`TASKS`) or a literature task.

    :param task: ``"melanoma"``, ``"nsclc"``, ``"rcc"``, ``"prostate"``, ``"b_all"``,
        ``"lbcl"``, ``"depillis2006"`` or ``"kirschner_panetta1998"``
    :param kwargs: ``observation``, ``decision_days``, ``horizon_days``, ``scan_noise_cv``
        (default: the setting's, 0.1), ``rtol``, ``method``, ``enforce_constraints``,
        ``reward_weights``, ``setting`` (a tier of :data:`oncogym.envs.settings.SETTINGS`,
        default ``"default"``), ``population`` (``None``: the setting's; ``"train"``: the
        training distribution even where the setting shifts it)
    """
    if task in LITERATURE_TASKS:
        return literature_params(task, **kwargs)
    if task in TASKS:
        return scenario_params(task, **kwargs)
    allowed = ", ".join((*TASKS, *LITERATURE_TASKS))
    raise ValueError(f"task: unknown task {task!r}; allowed: {allowed}")
