"""Indications as data: virtual-patient distributions, therapy menus, protocols, targets.

A :class:`Scenario` is one indication (melanoma, NSCLC, renal cell
carcinoma, prostate cancer, B-cell ALL, large B-cell lymphoma) on the ``oncoimmune``
model.  It is read from YAML files in ``oncogym/scenario_data/`` and validated by the
pydantic models below (every model forbids unknown keys; a bad file raises
``ValueError`` naming the field and what is allowed).

**Files.**  ``<name>.yaml`` is the hand-written scenario.  It may name a shared base
file with ``inherits: _solid`` (``_solid.yaml``); ``<name>.fitted.yaml``, written by
``experiments/calibration/calibrate.py``, holds the calibrated values.  The loader
deep-merges base ← scenario ← fitted (mappings merge key by key, anything else is
replaced), then validates.  Hand-written comments and sources thus survive every
recalibration, and the fitted values are one small, diffable file per scenario.

**Virtual patients.**  Each entry of ``params`` (model parameters) and ``initial``
(initial states) is a log-normal distribution given by its median and coefficient of
variation (``cv = 0``: a fixed value; a plain number in YAML means that), optionally
clipped to ``[low, high]`` (or ``distribution: exponential``: the death thresholds).
Metastatic scenarios give ``lesions`` instead of the tumour's initial states: the total
burden, the antigen-low share per lesion and up to four sites (prevalence, size share,
CTL infiltration, lethality, RECIST-measurable), which fill the model's lesion slots.  A
``selection`` accepts plausible patients so that their baseline sum of target diameters
follows a published distribution (Allen, Rieger & Musante 2016), or only requires
measurable disease; ``eligibility_days`` encodes the trials' "life expectancy of at least
12 weeks" by conditioning each death threshold on the baseline hazard not reaching it
within that many days.  ``correlations`` correlate the underlying normals
(log scale).  :func:`sample_patients` draws one standard-normal matrix of shape
(n, k) from the caller's generator, so a cohort of n patients is the first n rows of
any larger cohort with the same seed.  States not given in ``initial`` start at
tumour-free homeostasis *for that patient's parameters* (C = α/β, N = e·C/f,
R = σ_R/μ_R, marrow at ANC0) with the tumour micro-environment already established
(M2 and TGF-β/IL-10 at their quasi-steady state for the initial tumour).

**Cost budget.**  ``cost_budget`` (optional, :class:`CostBudget`) is the budget of
constrained RL: the new grade ≥ 3 toxicities per patient-episode (the environments'
``info["cost"]`` added up) that the standard of care gives on training patients, measured
by ``experiments/constrained/budgets.py``.

**Population shift.**  ``Cohort.test(scenario, n, shift=PopulationShift(...))`` is the
same test cohort moved to another population (:class:`PopulationShift`: more tumour at
baseline, colder lesions, older immune systems), for robustness checks: a policy trained
on the training distribution is tested on patients unlike those it saw.  Training cohorts
are never shifted.

**Seeds.**  ``Cohort(scenario, n, seed)`` is reproducible for an integer or a
:class:`numpy.random.SeedSequence` seed.  The named evaluation cohort
``Cohort.test(scenario)`` uses ``SeedSequence(ROOT_SEED, spawn_key=(0,))`` and training
cohort k uses ``SeedSequence(ROOT_SEED, spawn_key=(1, k))`` (:func:`training_seed`).
Different spawn keys give independent streams, and no integer seed (spawn key ``()``)
reproduces either, so training never sees the test patients.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from scipy.special import log_ndtr, ndtri

from oncogym import clinical, models
from oncogym.simulate import BatchTrajectory, simulate_batch
from oncogym.toxicity import CATEGORIES as TOX_CATEGORIES
from oncogym.toxicity import toxicity_grades

SCENARIO_DIR = Path(__file__).resolve().parent / "scenario_data"
"""Where the scenario YAML files live (package data)."""

ROOT_SEED = 20_261_127
"""Entropy of every named cohort seed (see :func:`evaluation_seed`, :func:`training_seed`)."""
TEST_SPAWN_KEY = (0,)
"""Spawn key of the named test cohorts."""
TRAIN_SPAWN_KEY = 1
"""First element of the spawn key of training cohort k: ``(1, k)``."""
DEFAULT_TEST_PATIENTS = 1000
"""Size of ``Cohort.test`` unless told otherwise."""


def evaluation_seed() -> np.random.SeedSequence:
    """The seed of the named test cohorts: ``SeedSequence(ROOT_SEED, spawn_key=(0,))``."""
    return np.random.SeedSequence(ROOT_SEED, spawn_key=TEST_SPAWN_KEY)


def training_seed(k: int) -> np.random.SeedSequence:
    """The seed of training cohort ``k`` (k ≥ 0): ``SeedSequence(ROOT_SEED, spawn_key=(1, k))``.

    :param k: index of the training cohort (a non-negative integer)
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k: must be a non-negative integer, got {k!r}")
    return np.random.SeedSequence(ROOT_SEED, spawn_key=(TRAIN_SPAWN_KEY, int(k)))


TEST_COHORT_SEED = evaluation_seed()
"""The test-cohort seed (a fresh copy: :func:`evaluation_seed`)."""

_CONFIG = ConfigDict(extra="forbid", frozen=False)


# --- distributions ------------------------------------------------------------------------
class ParamDistribution(BaseModel):
    """Log-normal distribution of one parameter or initial state across patients.

    ``X = median · exp(σ·Z)`` with ``σ = sqrt(ln(1 + cv²))`` (so ``cv`` is the
    coefficient of variation of X), clipped to ``[low, high]`` where given.  A plain
    number in YAML is a fixed value (``cv = 0``).
    """

    model_config = _CONFIG

    median: float = Field(ge=0.0, allow_inf_nan=False, description="median (the model's unit)")
    distribution: Literal["lognormal", "exponential"] = Field(
        "lognormal",
        description="lognormal (median, cv) or exponential (median; e.g. a unit-exponential "
        "death threshold has median ln 2)",
    )
    cv: float = Field(
        0.0, ge=0.0, le=10.0, allow_inf_nan=False, description="coefficient of variation"
    )
    low: float | None = Field(None, ge=0.0, allow_inf_nan=False, description="lower clip")
    high: float | None = Field(None, ge=0.0, allow_inf_nan=False, description="upper clip")
    source: str = Field("", description="where the value comes from")

    @model_validator(mode="before")
    @classmethod
    def _number_is_fixed(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"median": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> ParamDistribution:
        if self.cv > 0 and self.median <= 0:
            raise ValueError("median: must be > 0 when cv > 0 (log-normal)")
        if self.distribution == "exponential" and (self.median <= 0 or self.cv != 0):
            raise ValueError("exponential: needs median > 0 and no cv (its cv is 1)")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low: must be <= high ({self.high}), got {self.low}")
        return self

    @property
    def sigma(self) -> float:
        """Standard deviation of ln X."""
        return math.sqrt(math.log1p(self.cv**2))

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Values for standard-normal draws ``z``.

        :param z: standard-normal draws (any shape)
        """
        z = np.asarray(z, dtype=np.float64)
        if self.distribution == "exponential":
            # inverse CDF of the exponential at Φ(z): −ln(1 − Φ(z)) = −ln Φ(−z)
            x = self.median / math.log(2.0) * -log_ndtr(-z)
        else:
            x = self.median * np.exp(self.sigma * z)
        if self.low is not None or self.high is not None:
            x = np.clip(x, self.low, self.high)
        return x


class Correlation(BaseModel):
    """Correlation ``rho`` of ln X_a and ln X_b (names from ``params`` or ``initial``)."""

    model_config = _CONFIG

    a: str
    b: str
    rho: float = Field(gt=-1.0, lt=1.0, allow_inf_nan=False)


# --- protocols ---------------------------------------------------------------------------
class ProtocolDose(BaseModel):
    """One line of a protocol: a dose, optionally repeated.

    ``amount`` is in the model's therapy unit (``anti_pd1`` mg, ``anti_ctla4`` mg/kg,
    ``chemo`` mg/m², ``car_t`` cells/kg, ``radiotherapy`` Gy per fraction, …), or per
    kg of body weight when ``per_kg`` is true (e.g. nivolumab 3 mg/kg).  With
    ``every_days`` the dose repeats at ``day, day + every_days, …`` for ``count``
    doses, until ``until_day`` (exclusive) or to the horizon.  ``weekdays_only``
    skips days 5 and 6 of every week (radiotherapy fractions Monday–Friday).
    """

    model_config = _CONFIG

    therapy: str
    day: float = Field(ge=0.0, allow_inf_nan=False)
    amount: float = Field(ge=0.0, allow_inf_nan=False)
    duration_days: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    every_days: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    count: int | None = Field(None, ge=1)
    until_day: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    per_kg: bool = False
    weekdays_only: bool = False

    @model_validator(mode="after")
    def _check(self) -> ProtocolDose:
        if self.every_days is None and (self.count not in (None, 1) or self.until_day is not None):
            raise ValueError("every_days: needed when count > 1 or until_day is given")
        if self.until_day is not None and self.until_day < self.day:
            raise ValueError(f"until_day: must be >= day ({self.day}), got {self.until_day}")
        if self.every_days is not None and self.duration_days > self.every_days:
            raise ValueError(
                f"duration_days: must be <= every_days ({self.every_days}), "
                f"got {self.duration_days}"
            )
        return self

    def days(self, horizon_days: float) -> list[float]:
        """Start days of this line up to (excluding) ``horizon_days``.

        :param horizon_days: the end of the simulation (days)
        """
        if self.every_days is None:
            out = [self.day]
        else:
            end = horizon_days if self.until_day is None else min(self.until_day, horizon_days)
            n_max = self.count if self.count is not None else math.inf
            out = []
            k = 0
            while k < n_max:
                d = self.day + k * self.every_days
                if d >= end - 1e-9:
                    break
                k += 1
                if self.weekdays_only and math.floor(d + 1e-9) % 7 >= 5:
                    n_max += 1  # a skipped weekend day does not count
                    continue
                out.append(d)
        return [d for d in out if d < horizon_days - 1e-9]


class Protocol(BaseModel):
    """A trial arm as data; ``schedule`` expands it for ``simulate``.

    ``until_progression``: the doses stop at RECIST progression (as "until progression or
    unacceptable toxicity" in a trial protocol; without it they run to the horizon).
    ``next_line``: another protocol of the scenario that starts ``next_line_delay_days``
    after progression (the subsequent therapy a trial arm's survival includes, e.g.
    anti-PD-1 after ipilimumab); its own ``next_line`` is not followed.
    ``calibration_only``: a trial arm the environments cannot give (a dose outside their
    dose levels, e.g. ipilimumab 10 mg/kg) or a comparison no clinic would choose (CAR-T
    without lymphodepletion); it is simulated for calibration and validation only and is
    not a baseline policy (nor a line of the adaptive rules).
    """

    model_config = _CONFIG

    name: str
    description: str
    source: str
    doses: list[ProtocolDose] = Field(default_factory=list)
    until_progression: bool = False
    next_line: str | None = None
    next_line_delay_days: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    calibration_only: bool = False

    @property
    def switches(self) -> bool:
        """True if the arm changes at progression (stops or starts a next line)."""
        return self.until_progression or self.next_line is not None

    def schedule(
        self, horizon_days: float, *, weight_kg: float | None = None
    ) -> list[tuple[str, float, float, float]]:
        """The expanded schedule ``(therapy, start_day, amount, duration_days)``, sorted.

        Amounts are in the model's therapy units; per-kg lines are multiplied by
        ``weight_kg`` (default: the model's ``body_weight_kg``, 70 kg).  Doses on or
        after ``horizon_days`` are dropped.

        :param horizon_days: simulated days (> 0)
        :param weight_kg: body weight for per-kg lines (kg, > 0)
        """
        if not (isinstance(horizon_days, (int, float)) and math.isfinite(horizon_days)) or (
            horizon_days <= 0
        ):
            raise ValueError(f"horizon_days: must be a finite number > 0, got {horizon_days!r}")
        if weight_kg is None:
            weight_kg = _default_weight()
        if not (isinstance(weight_kg, (int, float)) and math.isfinite(weight_kg)) or weight_kg <= 0:
            raise ValueError(f"weight_kg: must be a finite number > 0, got {weight_kg!r}")
        out = []
        for line in self.doses:
            amount = line.amount * (weight_kg if line.per_kg else 1.0)
            out += [
                (line.therapy, float(d), float(amount), line.duration_days)
                for d in line.days(horizon_days)
            ]
        out.sort(key=lambda e: (e[1], e[0]))
        return out

    @property
    def has_per_kg(self) -> bool:
        """True if some line is dosed per kg (then the schedule depends on weight)."""
        return any(line.per_kg for line in self.doses)


# --- targets and calibration knobs ------------------------------------------------------------
Metric = Literal[
    "orr",
    "cr_rate",
    "remission_rate",
    "grade3_4_rate",
    "any_grade_rate",
    "median_pfs_months",
    "median_os_months",
    "pfs_median_ratio",
    "os_median_ratio",
    "os_hazard_ratio",
    "pfs_hazard_ratio",
    "os_rate",
    "antigen_negative_relapse_share",
    "orr_ratio",
    "cr_ratio",
    "grade3_4_ratio",
    "pd_rate",
    "dcr",
    "pfs_rate",
    "mixed_response_rate",
]


class CalibrationTarget(BaseModel):
    """A published figure a standard-of-care arm should reproduce.

    ``kind`` says how it is judged: ``within`` (|simulated − value| ≤ tolerance),
    ``at_least`` (simulated ≥ value − tolerance) or ``at_most`` (≤ value + tolerance).
    Rates are fractions (0.437, not 43.7).  ``category`` names the toxicity category
    (``any`` = worst over all categories) for grade rates; ``versus`` the comparison
    arm for ratios; ``by_day`` limits response assessment to scans up to that day;
    ``at_months`` is the landmark of a survival rate (``os_rate``: Kaplan–Meier overall
    survival at that many months).  ``role`` says what the calibration does with it:
    ``fit`` targets enter the fit's loss; ``validation`` targets (other trials or arms,
    chosen before fitting) never do and are only reported, so they test the fit.
    ``subgroup`` (``versus_subgroup``) restricts the arm (the ``versus`` arm) to the patients
    whose baseline sum of target diameters is below or above the arm's median.
    ``trial`` puts a validation figure in its trial's comparison of arms: validation figures
    of one metric and landmark with the same ``trial`` are ranked against each other as
    the trial ranked its arms (fit figures are ranked without it).
    """

    model_config = _CONFIG

    metric: Metric
    arm: str
    value: float = Field(allow_inf_nan=False)
    tolerance: float = Field(ge=0.0, allow_inf_nan=False)
    source: str
    kind: Literal["within", "at_least", "at_most"] = "within"
    category: str | None = None
    versus: str | None = None
    by_day: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    at_months: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    role: Literal["fit", "validation"] = "fit"
    subgroup: Literal["sld_below_median", "sld_above_median"] | None = None
    versus_subgroup: Literal["sld_below_median", "sld_above_median"] | None = None
    trial: str | None = None
    note: str = ""


class Knob(BaseModel):
    """A free calibration parameter: a path such as ``params.pdl1.cv`` and its range."""

    model_config = _CONFIG

    path: str = Field(pattern=r"^(params|initial|lesions)(\.[A-Za-z0-9_]+)+\.(median|cv)$")
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = True
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> Knob:
        if not self.low < self.high:
            raise ValueError(f"low: must be < high ({self.high}), got {self.low}")
        if self.log and self.low <= 0:
            raise ValueError(f"low: must be > 0 for a log-scaled knob, got {self.low}")
        return self


# --- lesions and the virtual-population selection -------------------------------------------
class LesionSite(BaseModel):
    """One lesion slot of the model (a metastatic site): who has it, its size, its immune access.

    A patient has a lesion at this site with probability ``prevalence``; its share of the
    burden is ``share`` (log-normal, normalised over the patient's lesions), its CTL
    infiltration ``infiltration`` (the model's ``infil_i``) and its weight in the death
    hazard ``lethality`` (``lethality_i``).
    """

    model_config = _CONFIG

    prevalence: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)
    share: ParamDistribution = Field(default_factory=lambda: ParamDistribution(median=1.0))
    infiltration: ParamDistribution = Field(default_factory=lambda: ParamDistribution(median=1.0))
    lethality: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    measurable: bool = Field(
        True, description="RECIST-measurable site (bone without a soft-tissue mass is not)"
    )
    source: str = ""


class Lesions(BaseModel):
    """Several lesions per patient (metastatic solid tumours): the model's lesion slots.

    ``burden`` is the total tumour cells at baseline over every lesion; ``antigen_low`` the
    antigen-low share T⁻/(T⁺ + T⁻) of each lesion (drawn per lesion, so lesions differ);
    ``sites`` the slots in order (lesion 1 first: the site radiotherapy treats).  Lesions
    share the systemic immune compartments and drug levels of the patient.
    """

    model_config = _CONFIG

    burden: ParamDistribution
    antigen_low: ParamDistribution
    sites: dict[str, LesionSite] = Field(min_length=1)
    source: str = ""


class Selection(BaseModel):
    """A virtual-population selection (Allen, Rieger & Musante, CPT Pharmacometrics Syst
    Pharmacol 2016;5:140-146): plausible patients, drawn from the scenario's distributions,
    are accepted with a probability that makes the accepted population's baseline
    ``observable`` follow a published log-normal distribution (``median``, ``cv``).

    ``baseline_sld_mm`` is the sum of the baseline diameters of the measurable lesions
    (RECIST target lesions); a patient with no measurable lesion is never accepted (trials
    of response need measurable disease).  Without ``median`` and ``cv`` (no published
    distribution) the selection only requires measurable disease.
    """

    model_config = _CONFIG

    observable: Literal["baseline_sld_mm"] = "baseline_sld_mm"
    median: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    cv: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)
    source: str

    @model_validator(mode="after")
    def _both(self) -> Selection:
        if (self.median is None) != (self.cv is None):
            raise ValueError("median: give median and cv together, or neither")
        return self


class Calibration(BaseModel):
    """Which distribution parameters the calibration script fits (``knobs``)."""

    model_config = _CONFIG

    knobs: list[Knob] = Field(default_factory=list)
    arms: list[str] = Field(default_factory=list, description="arms simulated when fitting")
    fit_patients: int | None = Field(
        None, ge=10, description="training-cohort size for the fit (default: the script's)"
    )
    note: str = ""


class CostBudget(BaseModel):
    """The budget of the cost of constrained RL: expected new grade ≥ 3 toxicities per
    patient-episode (the environments' ``info["cost"]`` added up over an episode).

    ``events`` is what ``protocol`` (the standard of care) gives, measured with the
    evaluator on ``patients`` training patients (``Cohort.train(scenario, patients,
    draw)``) under the default environment (weekly decisions, the scenario's horizon); a
    policy within the budget causes no more severe toxicity than the standard of care.
    ``source`` says how it was measured (the command).
    """

    model_config = _CONFIG

    events: float = Field(
        ge=0.0,
        allow_inf_nan=False,
        description="new grade >= 3 toxicities per patient-episode (a number >= 0)",
    )
    protocol: str
    patients: int = Field(ge=1)
    draw: int = Field(0, ge=0, description="the training cohort (Cohort.train draw k)")
    sem: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    source: str


# --- the scenario ------------------------------------------------------------------------
class Scenario(BaseModel):
    """One indication: patients, therapy menu and constraints, protocols, targets."""

    model_config = _CONFIG

    name: str
    title: str
    description: str = ""
    model: str = "oncoimmune"
    therapies: list[str] = Field(min_length=1)
    dose_levels: dict[str, list[float]]
    min_interval_days: dict[str, float | dict[float, float]] = Field(
        default_factory=dict,
        description="days between doses: a number, or one interval per nonzero dose level",
    )
    max_cumulative: dict[str, float] = Field(default_factory=dict)
    max_administrations: dict[str, int] = Field(default_factory=dict)
    scan_interval_days: float = Field(gt=0.0, allow_inf_nan=False)
    first_scan_day: float | None = Field(None, gt=0.0, allow_inf_nan=False)
    scan_days: list[float] = Field(default_factory=list, description="extra scan days")
    cr_threshold_mm: float = Field(clinical.DEFAULT_CR_THRESHOLD_MM, ge=0.0, allow_inf_nan=False)
    lethal_cells: float = Field(gt=0.0, allow_inf_nan=False)
    horizon_days: float = Field(730.0, gt=0.0, allow_inf_nan=False)
    params: dict[str, ParamDistribution] = Field(default_factory=dict)
    correlations: list[Correlation] = Field(default_factory=list)
    initial: dict[str, ParamDistribution] = Field(default_factory=dict)
    lesions: Lesions | None = None
    selection: Selection | None = None
    eligibility_days: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="trial inclusion: a life expectancy of at least this many days",
    )
    protocols: dict[str, Protocol] = Field(default_factory=dict)
    targets: list[CalibrationTarget] = Field(default_factory=list)
    calibration: Calibration = Field(default_factory=Calibration)
    cost_budget: CostBudget | None = Field(
        None, description="grade >= 3 toxicity budget of constrained RL (optional)"
    )

    @field_validator("dose_levels")
    @classmethod
    def _levels(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, levels in v.items():
            if not levels or levels[0] != 0.0:
                raise ValueError(f"{name}: the first dose level must be 0 (no dose), got {levels}")
            if any(not math.isfinite(x) for x in levels) or any(
                b <= a for a, b in itertools.pairwise(levels)
            ):
                raise ValueError(f"{name}: levels must be finite and increasing, got {levels}")
        return v

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        try:
            m = models.get(self.model)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        allowed = ", ".join(m.therapy_names)
        for t in self.therapies:
            if t not in m.therapy_names:
                raise ValueError(f"therapies: unknown therapy {t!r}; allowed: {allowed}")
        mine = ", ".join(self.therapies)
        for field_ in ("dose_levels", "min_interval_days", "max_cumulative", "max_administrations"):
            mapping = getattr(self, field_)
            for t, v in mapping.items():
                if t not in self.therapies:
                    raise ValueError(f"{field_}: {t!r} is not one of therapies ({mine})")
                if field_ == "min_interval_days" and isinstance(v, dict):
                    levels = sorted(float(x) for x in self.dose_levels.get(t, []) if x > 0)
                    if sorted(v) != levels:
                        raise ValueError(
                            f"min_interval_days.{t}: give one interval per nonzero dose level "
                            f"{levels}; got levels {sorted(v)}"
                        )
                    values = list(v.values())
                else:
                    values = [] if field_ == "dose_levels" else [v]
                for x in values:
                    if not math.isfinite(x) or x < 0:
                        raise ValueError(f"{field_}.{t}: must be finite and >= 0, got {x}")
        missing = [t for t in self.therapies if t not in self.dose_levels]
        if missing:
            raise ValueError(f"dose_levels: missing for therapies {missing}")
        for name in self.params:
            if name not in m.param_names:
                raise ValueError(
                    f"params: unknown parameter {name!r} of model {m.name!r}; "
                    f"allowed: {', '.join(m.param_names)}"
                )
        for name in self.initial:
            if name not in m.state_names:
                raise ValueError(
                    f"initial: unknown state {name!r} of model {m.name!r}; "
                    f"allowed: {', '.join(m.state_names)}"
                )
        if self.lesions is not None:
            slots = lesion_slots(m)
            if len(self.lesions.sites) > len(slots):
                raise ValueError(
                    f"lesions.sites: at most {len(slots)} sites (the model's lesion slots), got "
                    f"{len(self.lesions.sites)}"
                )
            taken = sorted({name for pair in slots for name in pair} & set(self.initial))
            if taken:
                raise ValueError(
                    f"initial: {taken} are set by lesions; give the burden in lesions.burden"
                )
        if self.selection is not None and self.lesions is None:
            raise ValueError("selection: needs lesions (the observable is a sum over lesions)")
        names = self.distribution_names
        for i, c in enumerate(self.correlations):
            for side in ("a", "b"):
                if getattr(c, side) not in names:
                    raise ValueError(
                        f"correlations[{i}].{side}: {getattr(c, side)!r} is not in params or "
                        f"initial; allowed: {', '.join(names)}"
                    )
            if c.a == c.b:
                raise ValueError(f"correlations[{i}]: a and b must differ")
        if self.correlations:
            try:
                np.linalg.cholesky(self.correlation_matrix())
            except np.linalg.LinAlgError:
                raise ValueError("correlations: the matrix is not positive definite") from None
        if any(d < 0 or not math.isfinite(d) for d in self.scan_days):
            raise ValueError(f"scan_days: must be finite and >= 0, got {self.scan_days}")
        for key, p in self.protocols.items():
            if p.name != key:
                raise ValueError(
                    f"protocols.{key}.name: must equal its key {key!r}, got {p.name!r}"
                )
            if p.next_line is not None and p.next_line not in self.protocols:
                raise ValueError(
                    f"protocols.{key}.next_line: unknown protocol {p.next_line!r}; allowed: "
                    f"{', '.join(self.protocols)}"
                )
            for i, line in enumerate(p.doses):
                if line.therapy not in self.therapies:
                    raise ValueError(
                        f"protocols.{key}.doses[{i}].therapy: {line.therapy!r} is not one of "
                        f"therapies ({mine})"
                    )
        arms = ", ".join(self.protocols) or "(none)"
        for i, tg in enumerate(self.targets):
            for side in ("arm", "versus"):
                arm = getattr(tg, side)
                if arm is not None and arm not in self.protocols:
                    raise ValueError(f"targets[{i}].{side}: unknown arm {arm!r}; allowed: {arms}")
            if tg.metric.endswith("ratio") and tg.versus is None:
                raise ValueError(f"targets[{i}].versus: needed for metric {tg.metric!r}")
            if (tg.metric in ("os_rate", "pfs_rate")) != (tg.at_months is not None):
                raise ValueError(
                    f"targets[{i}].at_months: needed for metrics 'os_rate' and 'pfs_rate' and "
                    "only for them"
                )
            # landmarks are quoted in whole months: 24 months fits a 730-day horizon
            horizon_months = round(self.horizon_days / clinical.DAYS_PER_MONTH)
            if tg.at_months is not None and tg.at_months > horizon_months:
                raise ValueError(
                    f"targets[{i}].at_months: {tg.at_months} months is beyond horizon_days "
                    f"({self.horizon_days:g} days, {horizon_months} months)"
                )
            if tg.category is not None and tg.category not in (*TOX_CATEGORIES, "any"):
                raise ValueError(
                    f"targets[{i}].category: unknown {tg.category!r}; allowed: "
                    f"{', '.join((*TOX_CATEGORIES, 'any'))}"
                )
        allowed_knobs = self.knob_distributions()
        for i, k in enumerate(self.calibration.knobs):
            where = k.path.rsplit(".", 1)[0]
            if where not in allowed_knobs:
                raise ValueError(
                    f"calibration.knobs[{i}].path: {where} is not a distribution of this "
                    f"scenario; allowed: {', '.join(allowed_knobs)}"
                )
        for arm in self.calibration.arms:
            if arm not in self.protocols:
                raise ValueError(f"calibration.arms: unknown arm {arm!r}; allowed: {arms}")
        if self.cost_budget is not None and self.cost_budget.protocol not in self.protocols:
            raise ValueError(
                f"cost_budget.protocol: unknown protocol {self.cost_budget.protocol!r}; "
                f"allowed: {arms}"
            )
        return self

    # --- derived ----------------------------------------------------------------------
    def measurable_sites(self) -> np.ndarray:
        """Per lesion slot of the model, whether RECIST can measure it (unused slots: True)."""
        k = len(lesion_slots(models.get(self.model)))
        out = np.ones(k, dtype=np.bool_)
        if self.lesions is not None:
            for i, site in enumerate(self.lesions.sites.values()):
                out[i] = site.measurable
        return out

    def knob_distributions(self) -> list[str]:
        """Dotted paths of every distribution a calibration knob may move."""
        out = [f"params.{k}" for k in self.params] + [f"initial.{k}" for k in self.initial]
        if self.lesions is not None:
            out += ["lesions.burden", "lesions.antigen_low"]
            for site in self.lesions.sites:
                out += [f"lesions.sites.{site}.share", f"lesions.sites.{site}.infiltration"]
        return out

    @property
    def distribution_names(self) -> list[str]:
        """Names of every distribution, ``params`` first, in file order."""
        return [*self.params, *self.initial]

    def correlation_matrix(self) -> np.ndarray:
        """Correlation matrix of the log-scale normals (order: :attr:`distribution_names`)."""
        names = self.distribution_names
        r = np.eye(len(names))
        for c in self.correlations:
            i, j = names.index(c.a), names.index(c.b)
            r[i, j] = r[j, i] = c.rho
        return r

    def scan_schedule(self, days: float | None = None) -> np.ndarray:
        """Scan days up to ``days`` (default: the horizon).

        Baseline at day 0, then ``first_scan_day`` (default ``scan_interval_days``) and
        every ``scan_interval_days`` after it, plus the extra ``scan_days``.

        :param days: last day of follow-up
        """
        end = self.horizon_days if days is None else float(days)
        first = self.scan_interval_days if self.first_scan_day is None else self.first_scan_day
        n = math.floor((end - first) / self.scan_interval_days + 1e-9) if end >= first else -1
        grid = first + np.arange(n + 1) * self.scan_interval_days
        extra = np.asarray([d for d in self.scan_days if d <= end], dtype=np.float64)
        return np.unique(np.concatenate([[0.0], grid, extra]))

    def protocol(self, name: str) -> Protocol:
        """The protocol called ``name``.

        :param name: a key of :attr:`protocols`
        """
        if name not in self.protocols:
            raise ValueError(
                f"protocol: unknown protocol {name!r} for scenario {self.name!r}; "
                f"allowed: {', '.join(self.protocols) or '(none)'}"
            )
        return self.protocols[name]


# --- loading --------------------------------------------------------------------------------
def available_scenarios() -> list[str]:
    """Names of the shipped scenarios (``scenario_data/<name>.yaml``), sorted."""
    return sorted(
        p.name[: -len(".yaml")]
        for p in SCENARIO_DIR.glob("*.yaml")
        if not p.name.startswith("_") and not p.name.endswith(".fitted.yaml")
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{path.name}: expected a mapping at the top level, got {type(data).__name__}"
        )
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in: mappings key by key, anything else replaced.

    A number overriding a mapping (or the reverse) in ``params``/``initial`` is turned
    into ``{"median": number}`` first, so a fitted median keeps a hand-written ``cv``.

    :param base: the lower layer
    :param override: the upper layer (wins)
    """
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, (int, float)) and "median" in old:
            value = {"median": value}
        if isinstance(value, Mapping) and isinstance(old, (int, float)):
            old = {"median": old}
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def scenario_data(name: str, *, fitted: bool = True) -> dict[str, Any]:
    """The merged, not yet validated data of scenario ``name`` (base ← file ← fitted).

    :param name: a name from :func:`available_scenarios`
    :param fitted: merge ``<name>.fitted.yaml`` when it exists
    """
    names = available_scenarios()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"scenario: unknown scenario {name!r}; allowed: {', '.join(names)}")
    data = _read_yaml(SCENARIO_DIR / f"{name}.yaml")
    base = data.pop("inherits", None)
    if base is not None:
        path = SCENARIO_DIR / f"{base}.yaml"
        if not isinstance(base, str) or not base.startswith("_") or not path.exists():
            bases = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("_*.yaml")))
            raise ValueError(f"{name}.yaml: inherits: unknown base {base!r}; allowed: {bases}")
        data = deep_merge(_read_yaml(path), data)
    fitted_path = SCENARIO_DIR / f"{name}.fitted.yaml"
    if fitted and fitted_path.exists():
        fit = _read_yaml(fitted_path)
        fit.pop("calibration_info", None)
        data = deep_merge(data, fit)
    return data


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    """The keys allowed at ``loc`` (the parent of an extra key), for error messages."""
    cls: Any = Scenario
    for part in loc[:-1]:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            field = cls.model_fields.get(str(part))
            if field is None:
                return ""
            cls = field.annotation
        else:
            origin = typing.get_origin(cls)
            args = typing.get_args(cls)
            if origin in (list, dict) and args:
                cls = args[-1]
            elif origin in (typing.Union, types.UnionType):
                cls = next((a for a in args if a is not type(None)), None)
            else:
                return ""
        while typing.get_origin(cls) in (typing.Union, types.UnionType):
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return ", ".join(cls.model_fields)
    return ""


def validate_scenario(data: Mapping[str, Any], *, where: str = "scenario") -> Scenario:
    """Validate scenario data; errors become one ``ValueError`` naming each field.

    :param data: the scenario as a mapping (e.g. from YAML)
    :param where: prefix of the error message (the file name)
    """
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(tuple(err["loc"]))
                msg = f"unknown key; allowed: {allowed}" if allowed else "unknown key"
            lines.append(f"{loc}: {msg}")
        raise ValueError(f"{where}: " + "; ".join(lines)) from None


@lru_cache(maxsize=64)
def _load_cached(name: str, fitted: bool) -> Scenario:
    return validate_scenario(scenario_data(name, fitted=fitted), where=f"{name}.yaml")


_NOT_DYNAMICS = (
    "name",
    "title",
    "description",
    "protocols",
    "targets",
    "calibration",
    "cost_budget",
)
_WORDS = ("source", "note", "description")


def _without_words(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_words(v) for k, v in node.items() if k not in _WORDS}
    if isinstance(node, list):
        return [_without_words(v) for v in node]
    return node


def dynamics_fingerprint(scenario: str | Scenario) -> str:
    """SHA-256 of everything in a scenario that decides what its patients do: the model's
    parameter defaults, states and therapies, and the scenario's distributions, lesions,
    selection, dose grid, constraints, scans and horizon (as resolved, fitted values
    included).  Words (sources, notes, descriptions), protocols, calibration targets and
    knobs and the cost budget are left out: editing them changes no patient.

    :param scenario: a scenario name or a :class:`Scenario`
    """
    sc = _as_scenario(scenario)
    m = models.get(sc.model)
    data = _without_words(sc.model_dump(mode="json", exclude=set(_NOT_DYNAMICS)))
    data["model"] = {
        "name": m.name,
        "params": [[p.name, p.value] for p in m.params],
        "states": list(m.state_names),
        "therapies": list(m.therapy_names),
    }
    text = json.dumps(data, sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def load_scenario(name: str, *, fitted: bool = True) -> Scenario:
    """Load and validate a shipped scenario (a fresh copy each call).

    :param name: one of :func:`available_scenarios`
    :param fitted: apply the calibrated values of ``<name>.fitted.yaml``
    """
    return _load_cached(name, bool(fitted)).model_copy(deep=True)


def _default_weight() -> float:
    return float(models.get("oncoimmune").default_params()["body_weight_kg"])


def _as_scenario(scenario: str | Scenario) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


# --- virtual patients -----------------------------------------------------------------------
SELECTION_CHUNK = 256
"""Candidates drawn at a time by the virtual-population selection (fixed, so that a cohort of
n patients is the first n of any larger cohort with the same seed)."""
SELECTION_REFERENCE = 20_000
"""Plausible patients in the reference pool that estimates the observable's density."""
SELECTION_SPAWN_KEY = (2,)
"""Spawn key of the reference pool's seed (apart from every test and training cohort)."""
SELECTION_RATIO_QUANTILE = 0.995
"""The acceptance constant M of the selection is this quantile of the target/plausible
density ratio over the reference pool (the ratio's maximum, in a far tail where the pool is
thin, would make the acceptance rate vanish); candidates above it are always accepted."""
_MAX_SELECTION_CHUNKS = 2_000


def lesion_slots(model: models.Model) -> list[tuple[str, str]]:
    """The model's lesion slots as ``(T⁺ state, T⁻ state)``: ``("Tp", "Tn")``, ``("Tp2",
    "Tn2")``, …; one slot for a model without them (``oncoimmune`` has four)."""
    names = model.state_names
    out = []
    for i in range(1, 100):
        suffix = "" if i == 1 else str(i)
        pair = (f"Tp{suffix}", f"Tn{suffix}")
        if pair[0] not in names or pair[1] not in names:
            break
        out.append(pair)
    return out


def _homeostasis(model: models.Model, P: np.ndarray, Y0: np.ndarray) -> None:
    """Set C, N, R, marrow and the micro-environment from each patient's parameters."""
    pn, sn = model.param_names, model.state_names
    if model.name != "oncoimmune":
        return

    def col(name: str) -> np.ndarray:
        return P[:, pn.index(name)]

    with np.errstate(divide="ignore", invalid="ignore"):
        c_star = np.where(col("beta") > 0, col("alpha") / col("beta"), Y0[:, sn.index("C")])
        n_star = np.where(col("f") > 0, col("e") * c_star / col("f"), Y0[:, sn.index("N")])
        r_star = np.where(col("mu_R") > 0, col("sigma_R") / col("mu_R"), Y0[:, sn.index("R")])
    Y0[:, sn.index("C")] = c_star
    Y0[:, sn.index("N")] = n_star
    Y0[:, sn.index("R")] = r_star
    for name in ("Prol", "Tr1", "Tr2", "Tr3", "ANC"):
        Y0[:, sn.index(name)] = col("anc0_per_l")


def _microenvironment(model: models.Model, P: np.ndarray, Y0: np.ndarray) -> None:
    """M2 and S at their quasi-steady state for the initial tumour (oncoimmune only)."""
    if model.name != "oncoimmune":
        return
    pn, sn = model.param_names, model.state_names

    def col(name: str) -> np.ndarray:
        return P[:, pn.index(name)]

    tt = sum(Y0[:, sn.index(tp)] + Y0[:, sn.index(tn)] for tp, tn in lesion_slots(model))
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = np.where(
            col("mu_M2") > 0, col("sigma_M2") * tt / (col("K_M2") + tt) / col("mu_M2"), 0.0
        )
        s = np.where(
            col("mu_S") > 0,
            (col("p_ST") * tt / (col("K_ST") + tt) + col("p_SM") * m2) / col("mu_S"),
            0.0,
        )
    Y0[:, sn.index("M2")] = np.nan_to_num(m2)
    Y0[:, sn.index("S")] = np.nan_to_num(s)


def _draw_candidates(
    sc: Scenario, m: models.Model, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` plausible patients: parameters and initial states from the distributions."""
    names = sc.distribution_names
    dists = [*sc.params.values(), *sc.initial.values()]
    k_les = 0 if sc.lesions is None else 1 + 4 * len(sc.lesions.sites)
    z = rng.standard_normal((int(n), len(names) + k_les))
    zd = z[:, : len(names)]
    if sc.correlations:
        zd = zd @ np.linalg.cholesky(sc.correlation_matrix()).T
    P = np.tile(m.params_array(), (int(n), 1))
    Y0 = np.tile(m.state_array(), (int(n), 1))
    n_params = len(sc.params)
    for j, (name, dist) in enumerate(zip(names, dists, strict=True)):
        if j < n_params:
            P[:, m.param_names.index(name)] = dist.transform(zd[:, j])
    _homeostasis(m, P, Y0)
    for j, (name, dist) in enumerate(zip(names, dists, strict=True)):
        if j >= n_params:
            Y0[:, m.state_names.index(name)] = dist.transform(zd[:, j])
    if sc.lesions is not None:
        _draw_lesions(sc.lesions, m, z[:, len(names) :], P, Y0)
    env_states = [s for s in ("M2", "S") if s not in sc.initial]
    if len(env_states) == 2:
        _microenvironment(m, P, Y0)
    if sc.eligibility_days is not None:
        _eligible(m, P, Y0, sc.eligibility_days)
    return P, Y0


def _eligible(m: models.Model, P: np.ndarray, Y0: np.ndarray, days: float) -> None:
    """Trial inclusion "life expectancy of at least ``days``": each patient's death threshold
    is drawn given that their baseline hazard h0 does not reach it within ``days``.  The
    threshold is unit-exponential, so that condition adds h0·days to it (memorylessness):
    a patient is not enrolled to die before the first scan, yet dies as soon once the
    disease has grown."""
    if "Hz" not in m.state_names or "death_threshold" not in m.param_names:
        return
    k = m.state_names.index("Hz")
    col = m.param_names.index("death_threshold")
    dydt = np.zeros(m.n_states)
    u = np.zeros(len(m.therapies))
    for b in range(P.shape[0]):
        m.rhs(0.0, Y0[b], P[b], u, dydt)
        P[b, col] += days * dydt[k]


def _draw_lesions(
    les: Lesions, m: models.Model, z: np.ndarray, P: np.ndarray, Y0: np.ndarray
) -> None:
    """Lesion sizes, antigen-low shares, infiltration and lethality from the draws ``z``
    (columns: burden, then per site presence, share, infiltration, antigen-low share)."""
    n = z.shape[0]
    sites = list(les.sites.values())
    k = len(sites)
    zs = z[:, 1:].reshape(n, k, 4)
    present = np.empty((n, k), dtype=bool)
    for i, site in enumerate(sites):
        present[:, i] = zs[:, i, 0] < norm_ppf(site.prevalence)
    # at least one lesion: where none is drawn, the site whose draw came closest
    none = ~present.any(axis=1)
    if none.any():
        margin = np.stack(
            [zs[:, i, 0] - norm_ppf(site.prevalence) for i, site in enumerate(sites)], axis=1
        )
        present[none, np.argmin(margin[none], axis=1)] = True
    share = np.stack([site.share.transform(zs[:, i, 1]) for i, site in enumerate(sites)], axis=1)
    share = np.where(present, share, 0.0)
    share /= share.sum(axis=1, keepdims=True)
    cells = les.burden.transform(z[:, 0])[:, np.newaxis] * share
    low = np.clip(np.stack([les.antigen_low.transform(zs[:, i, 3]) for i in range(k)], 1), 0, 1)
    slots = lesion_slots(m)
    for i, site in enumerate(sites):
        tp, tn = slots[i]
        Y0[:, m.state_names.index(tp)] = cells[:, i] * (1.0 - low[:, i])
        Y0[:, m.state_names.index(tn)] = cells[:, i] * low[:, i]
        P[:, m.param_names.index(f"infil_{i + 1}")] = site.infiltration.transform(zs[:, i, 2])
        P[:, m.param_names.index(f"lethality_{i + 1}")] = site.lethality


def norm_ppf(q: float) -> float:
    """Standard-normal quantile of ``q`` (``inf`` at 1)."""
    return float(ndtri(q))


def baseline_sld_mm(sc: Scenario, m: models.Model, Y0: np.ndarray) -> np.ndarray:
    """Sum of the baseline diameters of the measurable lesions (mm) of each patient.

    :param sc: the scenario (its ``cr_threshold_mm`` is the measurability threshold)
    :param m: its model
    :param Y0: initial states (n × n_states)
    """
    sld = np.zeros(Y0.shape[0])
    for (tp, tn), measurable in zip(lesion_slots(m), sc.measurable_sites(), strict=True):
        cells = Y0[:, m.state_names.index(tp)] + Y0[:, m.state_names.index(tn)]
        d = clinical.tumour_diameter_mm(cells)
        sld += np.where((d >= sc.cr_threshold_mm) & measurable, d, 0.0)
    return sld


class _Reference(NamedTuple):
    edges: np.ndarray
    """bin edges of ln(observable)"""
    ratio: np.ndarray
    """target density / plausible density per bin, divided by M (inf where the pool is empty)"""


def _selection_reference(sc: Scenario, m: models.Model) -> _Reference:
    """The acceptance probability per bin of ln(observable), from a reference pool."""
    key = sc.model_dump_json(include={"params", "initial", "lesions", "selection", "model"})
    if key in _REFERENCES:
        return _REFERENCES[key]
    sel = sc.selection
    assert sel is not None
    rng = np.random.default_rng(np.random.SeedSequence(ROOT_SEED, spawn_key=SELECTION_SPAWN_KEY))
    _, Y0 = _draw_candidates(sc, m, rng, SELECTION_REFERENCE)
    x = baseline_sld_mm(sc, m, Y0)
    logx = np.log(x[x > 0])
    if logx.size < 100:
        raise ValueError(
            f"selection: fewer than 100 of {SELECTION_REFERENCE} plausible patients have "
            "measurable disease; widen the lesion distributions"
        )
    edges = np.linspace(logx.min() - 1e-9, logx.max() + 1e-9, 41)
    counts, _ = np.histogram(logx, bins=edges)
    width = edges[1] - edges[0]
    plausible = counts / (SELECTION_REFERENCE * width)
    assert sel.median is not None and sel.cv is not None
    sigma = math.sqrt(math.log1p(sel.cv**2))
    mid = 0.5 * (edges[1:] + edges[:-1])
    target = np.exp(-0.5 * ((mid - math.log(sel.median)) / sigma) ** 2) / (
        sigma * math.sqrt(2 * math.pi)
    )
    with np.errstate(divide="ignore"):
        ratio = np.where(plausible > 0, target / plausible, np.inf)
    per_patient = ratio[np.clip(np.searchsorted(edges, logx) - 1, 0, len(ratio) - 1)]
    big_m = float(np.quantile(per_patient, SELECTION_RATIO_QUANTILE))
    ref = _Reference(edges, ratio / big_m)
    if len(_REFERENCES) > 64:
        _REFERENCES.clear()
    _REFERENCES[key] = ref
    return ref


_REFERENCES: dict[str, _Reference] = {}


def acceptance_probability(sc: Scenario, m: models.Model, Y0: np.ndarray) -> np.ndarray:
    """Probability that the selection accepts each candidate (0 without measurable disease).

    :param sc: a scenario with ``selection``
    :param m: its model
    :param Y0: the candidates' initial states
    """
    x = baseline_sld_mm(sc, m, Y0)
    assert sc.selection is not None
    if sc.selection.median is None:
        return (x > 0).astype(np.float64)
    ref = _selection_reference(sc, m)
    p = np.zeros(x.shape)
    ok = x > 0
    logx = np.log(x[ok])
    k = np.searchsorted(ref.edges, logx) - 1
    inside = (k >= 0) & (k < ref.ratio.size)
    prob = np.zeros(logx.shape)
    prob[inside] = np.minimum(ref.ratio[k[inside]], 1.0)
    # outside the pool's range the target density is below the pool's there: reject
    p[ok] = prob
    return p


class PopulationShift(NamedTuple):
    """A documented move of a scenario's patients to another population (multiplicative
    factors; 1 leaves a quantity as drawn).  :func:`shift_patients` applies it to drawn
    patients; ``Cohort.test(..., shift=...)`` and the environments' ``"shift"`` and
    ``"hard"`` settings use it."""

    burden: float = 1.0
    """factor on every lesion's tumour cells at baseline (T⁺ and T⁻ alike), capped so that
    the total stays below :data:`SHIFT_MAX_BURDEN_FRACTION` of the lethal burden"""
    infiltration: float = 1.0
    """factor on every lesion's CTL infiltration (``infil_k``): colder tumours"""
    immune_capacity: float = 1.0
    """factor on the lymphocyte production ``alpha``, and so on the homeostatic circulating
    lymphocytes ``C`` (= alpha/beta) and NK cells ``N`` (= e·C/f): older patients"""

    def check(self) -> PopulationShift:
        """This shift, validated (every factor a finite number > 0)."""
        for name, value in zip(self._fields, self, strict=True):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.integer, np.floating))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"shift.{name}: expected a finite factor > 0, got {value!r}")
        return self


SHIFT_MAX_BURDEN_FRACTION = 0.5
"""A shifted patient's baseline tumour burden is at most this share of the lethal burden
(a patient is not enrolled dying)."""


def shift_patients(
    scenario: str | Scenario, P: np.ndarray, Y0: np.ndarray, shift: PopulationShift
) -> tuple[np.ndarray, np.ndarray]:
    """Drawn patients ``(P, Y0)`` moved by ``shift`` (new arrays; the inputs are kept).

    The tumour cells of every lesion are multiplied by ``shift.burden`` (the total capped at
    :data:`SHIFT_MAX_BURDEN_FRACTION` of the lethal burden), the lesions' infiltration by
    ``shift.infiltration``, the lymphocyte production and the homeostatic lymphocyte and NK
    counts by ``shift.immune_capacity``; the tumour micro-environment (M2, TGF-β/IL-10)
    follows the new burden where the scenario does not fix it, and the eligibility
    conditioning (``eligibility_days``) is redone with the shifted baseline hazard, so a
    shifted patient still meets the trials' life-expectancy criterion.

    :param scenario: a :class:`Scenario` or a scenario name
    :param P: parameters (n × n_params)
    :param Y0: initial states (n × n_states)
    :param shift: the shift
    """
    sc = _as_scenario(scenario)
    if not isinstance(shift, PopulationShift):
        raise ValueError(f"shift: expected a PopulationShift, got {type(shift).__name__}")
    shift.check()
    m = models.get(sc.model)
    P, Y0 = np.array(P, dtype=np.float64), np.array(Y0, dtype=np.float64)
    pn, sn = m.param_names, m.state_names
    slots = [(sn.index(tp), sn.index(tn)) for tp, tn in lesion_slots(m)]
    h0 = _baseline_hazard(m, P, Y0) if sc.eligibility_days is not None else None
    total = sum(Y0[:, tp] + Y0[:, tn] for tp, tn in slots)
    factor = np.full(P.shape[0], float(shift.burden))
    if shift.burden > 1.0:  # never past the cap, never below the drawn burden
        cap = SHIFT_MAX_BURDEN_FRACTION * sc.lethal_cells
        with np.errstate(divide="ignore"):
            factor = np.minimum(factor, np.maximum(cap / total, 1.0))
    for tp, tn in slots:
        Y0[:, tp] *= factor
        Y0[:, tn] *= factor
    for k in range(1, len(slots) + 1):
        if f"infil_{k}" in pn:
            P[:, pn.index(f"infil_{k}")] *= shift.infiltration
    for name, where in (("alpha", P), ("C", Y0), ("N", Y0)):
        names = pn if where is P else sn
        if name in names:
            where[:, names.index(name)] *= shift.immune_capacity
    if "M2" not in sc.initial and "S" not in sc.initial:
        _microenvironment(m, P, Y0)
    if h0 is not None:
        col = pn.index("death_threshold")
        P[:, col] += sc.eligibility_days * (_baseline_hazard(m, P, Y0) - h0)
    return P, Y0


def _baseline_hazard(m: models.Model, P: np.ndarray, Y0: np.ndarray) -> np.ndarray:
    """dHz/dt at the initial state of each patient (0 for a model without the hazard)."""
    out = np.zeros(P.shape[0])
    if "Hz" not in m.state_names:
        return out
    k = m.state_names.index("Hz")
    dydt = np.zeros(m.n_states)
    u = np.zeros(len(m.therapies))
    for b in range(P.shape[0]):
        m.rhs(0.0, Y0[b], P[b], u, dydt)
        out[b] = dydt[k]
    return out


def sample_patients(
    scenario: str | Scenario,
    rng: np.random.Generator,
    n: int,
    *,
    shift: PopulationShift | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` virtual patients of a scenario.

    All randomness comes from ``rng``.  Plausible patients come from one
    ``rng.standard_normal((m, k))`` call for the k distributions (params then initial, in
    file order, correlated through the Cholesky factor of
    :meth:`Scenario.correlation_matrix`; then the lesions: burden, and per site presence,
    share, infiltration, antigen-low share).  Without ``selection`` they are the patients
    (m = n).  With it, candidates are drawn :data:`SELECTION_CHUNK` at a time, each followed
    by one uniform per candidate, and accepted with :func:`acceptance_probability` (the
    Allen 2016 acceptance–rejection) until n are accepted.  Either way a cohort of n patients
    is the first n rows of any larger cohort from the same generator state.

    With ``shift`` the drawn patients are then moved by :func:`shift_patients` (the same
    draws, so a shifted cohort is the unshifted one, patient for patient, moved).

    :param scenario: a :class:`Scenario` or a scenario name
    :param rng: the caller's generator
    :param n: number of patients (>= 1)
    :param shift: a :class:`PopulationShift` (default: none)
    :return: ``(P, Y0)``: parameters (n × n_params, ``model.param_names`` order) and
        initial states (n × n_states, ``model.state_names`` order) for
        :func:`oncogym.simulate_batch`
    """
    sc = _as_scenario(scenario)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    if shift is not None:
        if not isinstance(shift, PopulationShift):
            raise ValueError(f"shift: expected a PopulationShift, got {type(shift).__name__}")
        shift.check()
        return shift_patients(sc, *sample_patients(sc, rng, n), shift)
    m = models.get(sc.model)
    if sc.selection is None:
        return _draw_candidates(sc, m, rng, int(n))
    Ps, Ys = [], []
    got = 0
    for _ in range(_MAX_SELECTION_CHUNKS):
        P, Y0 = _draw_candidates(sc, m, rng, SELECTION_CHUNK)
        keep = rng.random(SELECTION_CHUNK) < acceptance_probability(sc, m, Y0)
        Ps.append(P[keep])
        Ys.append(Y0[keep])
        got += int(keep.sum())
        if got >= n:
            return np.concatenate(Ps)[: int(n)], np.concatenate(Ys)[: int(n)]
    raise ValueError(
        f"selection: accepted only {got} of {_MAX_SELECTION_CHUNKS * SELECTION_CHUNK} plausible "
        "patients; the selection target lies outside the plausible population"
    )


class Cohort:
    """A fixed, reproducible set of virtual patients of one scenario.

    :param scenario: a :class:`Scenario` or a scenario name
    :param n: number of patients (>= 1)
    :param seed: an integer or a :class:`numpy.random.SeedSequence`
    :param shift: a :class:`PopulationShift` applied to the drawn patients (default: none)
    """

    def __init__(
        self,
        scenario: str | Scenario,
        n: int,
        seed: int | np.random.SeedSequence,
        *,
        shift: PopulationShift | None = None,
    ) -> None:
        self.scenario: Scenario = _as_scenario(scenario)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: must be a positive integer, got {n!r}")
        if isinstance(seed, bool) or not isinstance(
            seed, (int, np.integer, np.random.SeedSequence)
        ):
            raise ValueError(f"seed: expected an integer or a SeedSequence, got {seed!r}")
        if isinstance(seed, (int, np.integer)) and seed < 0:
            raise ValueError(f"seed: must be >= 0, got {seed}")
        self.n = int(n)
        self.seed = seed
        self.shift = shift
        self.model = models.get(self.scenario.model)
        rng = np.random.default_rng(seed)
        self.params, self.y0 = sample_patients(self.scenario, rng, self.n, shift=shift)

    @classmethod
    def test(
        cls,
        scenario: str | Scenario,
        n: int = DEFAULT_TEST_PATIENTS,
        *,
        shift: PopulationShift | None = None,
    ) -> Cohort:
        """The named evaluation cohort (seed :func:`evaluation_seed`).

        :param scenario: a :class:`Scenario` or a scenario name
        :param n: number of patients
        :param shift: a :class:`PopulationShift`: the same patients moved to a shifted
            population (:func:`shift_patients`); training cohorts are never shifted
        """
        return cls(scenario, n, evaluation_seed(), shift=shift)

    @classmethod
    def train(cls, scenario: str | Scenario, n: int, k: int = 0) -> Cohort:
        """Training cohort ``k`` (seed :func:`training_seed`), disjoint from the test cohort.

        :param scenario: a :class:`Scenario` or a scenario name
        :param n: number of patients
        :param k: index of the training cohort
        """
        return cls(scenario, n, training_seed(k))

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        seed = self.seed
        if isinstance(seed, np.random.SeedSequence):
            seed = f"SeedSequence({seed.entropy}, spawn_key={seed.spawn_key})"
        shift = "" if self.shift is None else f", shift={self.shift!r}"
        return f"Cohort({self.scenario.name!r}, n={self.n}, seed={seed}{shift})"

    def _index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -self.n <= i < self.n:
            raise ValueError(f"i: must be an integer in [0, {self.n}), got {i!r}")
        return int(i) % self.n

    def patient(self, i: int) -> tuple[dict[str, float], dict[str, float]]:
        """Parameters and initial state of patient ``i`` as dicts (for :func:`oncogym.simulate`).

        :param i: patient index
        """
        k = self._index(i)
        params = dict(zip(self.model.param_names, self.params[k].tolist(), strict=True))
        y0 = dict(zip(self.model.state_names, self.y0[k].tolist(), strict=True))
        return params, y0

    def weights_kg(self) -> np.ndarray:
        """Body weight of each patient (kg)."""
        return self.params[:, self.model.param_names.index("body_weight_kg")].copy()

    def schedules(
        self, protocol: str | Protocol | Sequence[Any], days: float | None = None
    ) -> list[Any] | list[list[Any]]:
        """The schedule(s) of ``protocol``: one shared list, or one per patient when the
        protocol has per-kg lines and weights differ.

        :param protocol: a protocol name, a :class:`Protocol`, or an explicit schedule
            ``[(therapy, start_day, amount, duration_days), …]``
        :param days: horizon (default: the scenario's)
        """
        horizon = self.scenario.horizon_days if days is None else float(days)
        if isinstance(protocol, str):
            protocol = self.scenario.protocol(protocol)
        if not isinstance(protocol, Protocol):
            if isinstance(protocol, (Mapping, bytes)) or not isinstance(protocol, Sequence):
                raise ValueError(
                    f"protocol: expected a protocol name, a Protocol or a schedule list, got "
                    f"{protocol!r}"
                )
            return list(protocol)
        weights = self.weights_kg()
        if protocol.has_per_kg and np.ptp(weights) > 0:
            return [protocol.schedule(horizon, weight_kg=float(w)) for w in weights]
        return protocol.schedule(horizon, weight_kg=float(weights[0]))

    def run(
        self,
        protocol: str | Protocol | Sequence[Any],
        days: float | None = None,
        dt: float = 1.0,
        **kwargs: Any,
    ) -> BatchTrajectory:
        """Simulate every patient under ``protocol`` in one :func:`oncogym.simulate_batch` call.

        :param protocol: a protocol name of the scenario, a :class:`Protocol`, or an
            explicit schedule ``[(therapy, start_day, amount, duration_days), …]``
        :param days: horizon (default: the scenario's ``horizon_days``)
        :param dt: output interval (days)
        :param kwargs: passed to :func:`oncogym.simulate_batch` (``rtol``, ``check``, …)
        """
        horizon = self.scenario.horizon_days if days is None else days
        first = simulate_batch(
            self.model,
            horizon,
            params=self.params,
            y0=self.y0,
            schedules=self.schedules(protocol, horizon),
            dt=dt,
            **kwargs,
        )
        if isinstance(protocol, str):
            protocol = self.scenario.protocol(protocol)
        if not isinstance(protocol, Protocol) or not protocol.switches:
            return first
        # the arm changes at progression: the trajectory up to each patient's progression
        # day does not depend on what follows, so a second run with the switched
        # schedules gives the whole arm
        progression = self.readouts(first).recist.progression_day
        return simulate_batch(
            self.model,
            horizon,
            params=self.params,
            y0=self.y0,
            schedules=self.switched_schedules(protocol, progression, float(horizon)),
            dt=dt,
            **kwargs,
        )

    def switched_schedules(
        self, protocol: Protocol, progression_day: np.ndarray, horizon: float
    ) -> list[list[Any]]:
        """Per-patient schedules of an arm that changes at progression: the protocol's doses
        (before ``progression_day`` when ``until_progression``), then its ``next_line``
        from ``progression_day + next_line_delay_days``.

        :param protocol: the arm
        :param progression_day: each patient's day of RECIST progression (inf: none)
        :param horizon: last day simulated
        """
        weights = self.weights_kg()
        nxt = None if protocol.next_line is None else self.scenario.protocol(protocol.next_line)
        out = []
        for w, day in zip(weights, np.asarray(progression_day, dtype=np.float64), strict=True):
            sched = protocol.schedule(horizon, weight_kg=float(w))
            if protocol.until_progression:
                sched = [e for e in sched if e[1] < day]
            if nxt is not None and math.isfinite(day):
                start = day + protocol.next_line_delay_days
                sched += [
                    (th, start + d, a, dur)
                    for th, d, a, dur in nxt.schedule(horizon, weight_kg=float(w))
                    if start + d < horizon - 1e-9
                ]
            out.append(sorted(sched, key=lambda e: (e[1], e[0])))
        return out

    def readouts(self, traj: BatchTrajectory) -> clinical.PatientReadouts:
        """Clinical readouts of a run of this cohort: RECIST at the scenario's scans,
        best response, PFS and OS (death at ``lethal_cells`` or any grade 5), worst
        toxicity grade per category.

        :param traj: the result of :meth:`run` (same patients)
        """
        if not isinstance(traj, BatchTrajectory) or traj.y.shape[0] != self.n:
            raise ValueError(
                f"traj: expected a BatchTrajectory of this cohort's {self.n} patients, got "
                f"{type(traj).__name__}"
                + (f" of {traj.y.shape[0]}" if isinstance(traj, BatchTrajectory) else "")
            )
        if not np.all(traj.ok):
            bad = np.flatnonzero(~traj.ok)[:10].tolist()
            raise ValueError(f"traj: integration failed for patients {bad} (NaN states)")
        lesions = np.stack([traj[tp] + traj[tn] for tp, tn in lesion_slots(self.model)], axis=1)
        cells = lesions.sum(axis=1)
        pn = self.model.param_names
        alc_v = self.params[:, pn.index("alc_volume_l")][:, np.newaxis]
        grades = toxicity_grades(traj, alc_volume_l=alc_v)
        return clinical.patient_readouts(
            cells,
            traj.t,
            self.scenario.scan_schedule(float(traj.t[-1])),
            grades=grades,
            lethal_cells=self.scenario.lethal_cells,
            cr_threshold_mm=self.scenario.cr_threshold_mm,
            lesion_cells=lesions,
            measurable_site=self.scenario.measurable_sites(),
            hazard=traj["Hz"],
            death_threshold=self.params[:, pn.index("death_threshold")],
        )


__all__ = [
    "DEFAULT_TEST_PATIENTS",
    "ROOT_SEED",
    "SCENARIO_DIR",
    "TEST_COHORT_SEED",
    "TEST_SPAWN_KEY",
    "TRAIN_SPAWN_KEY",
    "CalibrationTarget",
    "Cohort",
    "Correlation",
    "CostBudget",
    "Knob",
    "ParamDistribution",
    "Protocol",
    "ProtocolDose",
    "Scenario",
    "available_scenarios",
    "deep_merge",
    "dynamics_fingerprint",
    "evaluation_seed",
    "load_scenario",
    "sample_patients",
    "scenario_data",
    "training_seed",
    "validate_scenario",
]
