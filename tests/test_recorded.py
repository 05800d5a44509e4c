"""The environments, the SB3 adapter, the evaluator and the planner reproduce the recorded
episodes of the current env version (-v1), number for number (``tests/recorded.py``).

When an env id's version is bumped (dynamics, observations or rewards change), record the
new version's file with ``python tests/recorded.py`` and point this test at it.  The v0
recording held the kernel redesign to the release before it; v1 (lesions, the death
hazard, the recalibrated scenarios) was recorded after the recalibration.
"""

from __future__ import annotations

import numpy as np
import pytest
import recorded


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(recorded.PATH) as data:
        return {k: data[k] for k in data.files}


def _compare(prefix: str, fresh: dict[str, np.ndarray], reference: dict[str, np.ndarray]):
    expected = {k.removeprefix(prefix): v for k, v in reference.items() if k.startswith(prefix)}
    assert expected, f"no recording under {prefix}"
    assert set(fresh) == set(expected), prefix
    for key, want in expected.items():
        got = np.asarray(fresh[key])
        assert got.shape == want.shape, f"{prefix}{key}: shape {got.shape} != {want.shape}"
        np.testing.assert_array_equal(got, want, err_msg=f"{prefix}{key}")


@pytest.mark.parametrize("name", list(recorded.SINGLE_CASES))
def test_single_env_equals_the_recorded_episode(name, reference):
    _compare(f"single/{name}/", recorded.single_episode(name), reference)


@pytest.mark.parametrize("name", list(recorded.VECTOR_CASES))
def test_vector_env_equals_the_recorded_run_across_autoresets(name, reference):
    _compare(f"vector/{name}/", recorded.vector_run(name), reference)


def test_sb3_adapter_equals_the_recorded_run(reference):
    _compare("sb3/rcc/", recorded.sb3_run(), reference)


@pytest.mark.parametrize(
    ("task", "policy"),
    [(task, policy) for task, policies in recorded.EVAL_CASES.items() for policy in policies],
)
def test_evaluator_and_planner_equal_the_recorded_rollout(task, policy, reference):
    _compare(f"eval/{task}/{policy}/", recorded.evaluation(task, policy), reference)


DEFAULT = {"setting": "default"}


@pytest.mark.parametrize(
    "name", ["melanoma_discrete", "depillis2006_continuous", "nsclc_full_biweekly"]
)
def test_the_default_setting_is_the_recorded_env(name, reference):
    """``setting="default"`` given explicitly is the v1 env, number for number."""
    _compare(f"single/{name}/", recorded.single_episode(name, DEFAULT), reference)


def test_the_default_setting_is_the_recorded_vector_env_and_evaluation(reference):
    _compare("vector/melanoma/", recorded.vector_run("melanoma", DEFAULT), reference)
    for policy in ("nivolumab_ipilimumab", "mpc_population"):
        got = recorded.evaluation("melanoma", policy, DEFAULT)
        _compare(f"eval/melanoma/{policy}/", got, reference)
