"""The default reward cannot be gamed (issue 4, item 5).

On each scenario's test cohort, under the default ``"qaly"`` reward, (a) no treatment,
(b) the maximum dose of every therapy at every step and (c) a policy that ends episodes
early through toxicity (maximum doses with the clinical constraints switched off) must each
score below the scenario's standard-of-care protocol, which is driven through the same
environment from ``Protocol.schedule``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from oncogym.envs import STANDARD_OF_CARE, OncologyEnv, OncologyVectorEnv
from oncogym.envs import functional as Fn
from oncogym.envs.registration import ENV_IDS
from oncogym.scenarios import Cohort, available_scenarios

N_PATIENTS = 32
HORIZON = {task: horizon for task, horizon, _ in ENV_IDS.values()}

# Scenarios where the most intensive regimen the constraints allow outlives the standard of
# care in the model (expected failures, each with its reason).  The CAR-T scenarios pass
# since the lymphotoxicity of salvage chemotherapy (which ablates CAR-T cells) and the CAR-T
# arms' survival were calibrated.  Prostate passes since docetaxel given with the vaccine
# cancels the vaccine's benefit, as in VIABLE (calibrated), and the standard of care is the
# clinical pathway, sipuleucel-T then docetaxel: maximum dose gives both at once (and
# pembrolizumab, which adds nothing).  NSCLC does not (below).
MAX_DOSE_BEATS_SOC: dict[str, str] = {
    "nsclc": (
        "the calibrated evidence, not a loophole of the reward: maximum dose adds two platinum "
        "cycles (six against four: OS HR 0.94 in Rossi 2014, 0.90 in the model) and 66 Gy of "
        "thoracic radiotherapy (NRG-LU002: no OS difference; 0.94 in the model, within its "
        "band) to pembrolizumab, each a little better; the standard of care, KEYNOTE-189's "
        "four cycles, has neither (its pemetrexed maintenance is not modelled)"
    ),
}


def _episode_returns(task: str, cohort: Cohort, policy, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Return of each cohort patient's first episode, and its cause of death."""
    n = len(cohort)
    venv = OncologyVectorEnv(
        n, task, action_mode="continuous", horizon_days=HORIZON[task], **kwargs
    )
    venv.reset(seed=2024, options={"cohort": cohort})
    total = np.zeros(n)
    cause = np.full(n, "none", dtype=object)
    done = np.zeros(n, dtype=np.bool_)
    for step in range(venv.params.n_steps):
        _, r, te, tr, info = venv.step(policy(step, n, venv.params))
        total += np.where(done, 0.0, r)
        ended = (te | tr) & ~done
        final = info.get("final_info", {})
        if "death_cause" in final:
            died = ended & final["_death_cause"]
            cause[died] = final["death_cause"][died]
        done |= te | tr
        if done.all():
            break
    assert done.all()
    return total, cause


def _soc_policy(task: str, cohort: Cohort):
    params = OncologyEnv(task, horizon_days=HORIZON[task]).params
    schedules = cohort.schedules(STANDARD_OF_CARE[task], HORIZON[task])
    if schedules and isinstance(schedules[0], list):  # per-kg doses: one schedule each
        actions = np.stack([Fn.schedule_to_actions(params, s) for s in schedules])
    else:
        actions = np.repeat(Fn.schedule_to_actions(params, schedules)[np.newaxis], len(cohort), 0)
    return lambda step, n, p: actions[:, step]


def _none(step, n, params):
    return np.zeros((n, params.n_therapies))


def _max(step, n, params):
    return np.ones((n, params.n_therapies))


def _scenarios(mark_max: bool = False):
    out = []
    for task in STANDARD_OF_CARE:
        marks = []
        if task not in available_scenarios():
            marks.append(pytest.mark.skip(reason=f"scenario file {task}.yaml not there yet"))
        if mark_max and task in MAX_DOSE_BEATS_SOC:
            marks.append(
                pytest.mark.xfail(
                    reason=MAX_DOSE_BEATS_SOC[task], raises=AssertionError, strict=False
                )
            )
        out.append(pytest.param(task, marks=marks))
    return out


_CACHE: dict[str, tuple[Cohort, float]] = {}


def _soc_mean(task: str) -> tuple[Cohort, float]:
    if task not in _CACHE:
        cohort = Cohort.test(task, N_PATIENTS)
        soc, cause = _episode_returns(task, cohort, _soc_policy(task, cohort))
        assert np.all(cause != "error"), "integrator failure under the standard of care"
        _CACHE[task] = (cohort, float(soc.mean()))
    return _CACHE[task]


@pytest.mark.parametrize("task", _scenarios())
def test_no_treatment_scores_below_standard_of_care(task):
    cohort, soc = _soc_mean(task)
    none, _ = _episode_returns(task, cohort, _none)
    assert none.mean() < soc


@pytest.mark.parametrize("task", _scenarios(mark_max=True))
def test_maximum_dose_every_step_scores_below_standard_of_care(task):
    cohort, soc = _soc_mean(task)
    most, _ = _episode_returns(task, cohort, _max)
    assert most.mean() < soc


# A therapy that the trials show adds no survival benefit in the scenario, with that trial.
USELESS_ADD_ON = {
    "prostate": (
        "anti_pd1",
        "KEYNOTE-921: pembrolizumab added to docetaxel, OS HR 0.92 (0.78-1.09)",
    ),
}


@pytest.mark.parametrize("task", list(USELESS_ADD_ON))
def test_adding_a_useless_therapy_lowers_the_return(task):
    """Maximum dose of everything scores lower with the useless add-on than without it: the
    default reward charges its toxicity and burden rather than paying for dosing."""
    cohort, _ = _soc_mean(task)
    therapy, _ = USELESS_ADD_ON[task]
    params = OncologyEnv(task).params
    drop = np.ones(params.n_therapies)
    drop[params.therapies.index(therapy)] = 0.0
    most, _ = _episode_returns(task, cohort, _max)
    without, _ = _episode_returns(task, cohort, lambda step, n, p: np.tile(drop, (n, 1)))
    assert without.mean() > most.mean()


@pytest.mark.parametrize("task", _scenarios())
def test_ending_episodes_through_toxicity_scores_below_standard_of_care(task):
    cohort, soc = _soc_mean(task)
    toxic, cause = _episode_returns(task, cohort, _max, enforce_constraints=False)
    assert toxic.mean() < soc
    # where toxicity did end episodes early, those patients fared worst of all
    if np.any(cause == "toxicity"):
        assert toxic[cause == "toxicity"].mean() < soc


def test_dying_now_never_pays_more_than_stopping_treatment():
    """From the state before a fatal toxic step, stopping treatment earns at least as much
    as the step that kills (the structural guarantee behind the tests above)."""
    env = OncologyEnv("nsclc", enforce_constraints=False)
    toxic = np.array([0, 1, 1])  # weekly chemotherapy and radiotherapy, no caps
    checked = 0
    for seed in range(3):
        env.reset(seed=seed)
        while True:
            before = pickle.dumps(env)
            _, r, te, tr, info = env.step(toxic)
            if te or tr:
                break
        if info.get("death_cause") != "toxicity":
            continue
        stop = pickle.loads(before)
        rest = 0.0
        while True:
            _, r2, te2, tr2, _ = stop.step(np.zeros(3, dtype=np.int64))
            rest += r2
            if te2 or tr2:
                break
        assert r < rest
        checked += 1
    assert checked > 0
