"""Hyperparameter search with Ray Tune: Optuna proposes, ASHA stops the weak trials early.

The search space lives in YAML under ``oncogym/agents/search_spaces/<algo>.yml`` (validated; unknown
keys rejected).  Each trial trains the algorithm (:func:`oncogym.agents.train.train`) in
``reports`` chunks of ``timesteps_per_report`` steps (continuing its own run from the
previous chunk), and after each chunk scores the agent on a *validation* cohort — patients
of the scenario's training distribution
(:func:`oncogym.agents.evaluate.validation_cohort`), never the test cohort — and reports
the mean return; ASHA compares trials at equal budgets and stops the worst.  The best
trial's hyperparameters, laid over the algorithm's configuration for the env id, are
written as a YAML file in the format ``oncogym train --config`` reads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TUNE_DIR = Path(__file__).resolve().parent / "search_spaces"
"""The default search spaces (package data of ``oncogym.agents``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimension(_Strict):
    """One searched hyperparameter."""

    type: Literal["uniform", "loguniform", "choice", "randint"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.type == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"{self.type} needs low < high")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
        return self

    def ray(self) -> Any:
        from ray import tune

        if self.type == "choice":
            return tune.choice(self.values)
        if self.type == "uniform":
            return tune.uniform(self.low, self.high)
        if self.type == "loguniform":
            return tune.loguniform(self.low, self.high)
        return tune.randint(int(self.low), int(self.high))


class Budget(_Strict):
    timesteps_per_report: int = Field(50_000, gt=0)
    reports: int = Field(4, gt=0)
    grace_period: int = Field(1, gt=0)
    reduction_factor: int = Field(2, gt=1)


class SearchConfig(_Strict):
    """A search: the algorithm, the space, the budget."""

    algo: str = "ppo"
    num_samples: int = Field(8, gt=0)
    validation_patients: int = Field(64, gt=0)
    budget: Budget = Field(default_factory=Budget)
    space: dict[str, Dimension]


def load_search(path: str | Path) -> SearchConfig:
    """Read and validate a search-space YAML file (one-line errors naming the key)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"space: {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            model = SearchConfig if len(e["loc"]) == 1 else Budget
            msg = f"unknown key; allowed: {', '.join(model.model_fields)}"
        raise ValueError(f"{path}: {where}: {msg}") from None


def _trial(config: dict[str, Any], *, env_id: str, algo: str, search: dict[str, Any]) -> None:
    from ray import tune

    from oncogym.envs import ENV_IDS

    from .evaluate import rollout, validation_cohort
    from .train import load_agent, train

    task = ENV_IDS[env_id][0]
    budget = search["budget"]
    n_val = search["validation_patients"]
    cohort, val_seed = validation_cohort(task, n_val)
    run_dir = Path(tune.get_context().get_trial_dir()) / "run"
    overrides = dict(config)
    for i in range(budget["reports"]):
        steps = budget["timesteps_per_report"] * (i + 1)
        if i == 0:
            train(
                env_id,
                algo,
                seed=0,
                n_timesteps=steps,
                run_dir=run_dir,
                overrides=overrides,
                progress_bar=False,
                tensorboard=False,
                clinical_evals=0,
            )
        else:
            train(
                env_id,
                algo,
                n_timesteps=steps,
                run_dir=run_dir,
                resume=True,
                progress_bar=False,
                tensorboard=False,
                clinical_evals=0,
            )
        res = rollout(load_agent(run_dir), task, cohort=cohort, n_patients=n_val, seed=val_seed)
        tune.report({"mean_return": float(res.returns.mean()), "timesteps": steps})


def tune_hyperparams(
    env_id: str,
    space: str | Path | None = None,
    *,
    out: str | Path = "tune_results",
    num_samples: int | None = None,
    cpus: int = 2,
    address: str | None = None,
    seed: int = 0,
) -> tuple[Path, dict[str, Any], float]:
    """Run the search; returns ``(best config YAML path, best hyperparameters, score)``.

    :param space: search YAML (default ``oncogym/agents/search_spaces/ppo.yml``)
    :param out: folder of the Ray Tune experiment and of ``best_<algo>.yml``
    """
    from oncogym.envs import ENV_IDS

    from .config import to_yaml_dict
    from .ray_backend import init_ray, require_ray
    from .train import algo_name, load_config

    if env_id not in ENV_IDS:
        raise ValueError(f"env: unknown {env_id!r}; allowed: {', '.join(ENV_IDS)}")
    search = load_search(space if space is not None else TUNE_DIR / "ppo.yml")
    algo = algo_name(search.algo)
    from .config import allowed_keys
    from .train import ALGOS

    allowed = allowed_keys(ALGOS[algo].load_class())
    for key in search.space:
        if key not in allowed:
            raise ValueError(
                f"space: {key!r} is not a {algo} hyperparameter; allowed: {', '.join(allowed)}"
            )
    require_ray()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    started = init_ray(cpus, address)
    out = Path(out).resolve()
    try:
        trainable = tune.with_parameters(
            _trial, env_id=env_id, algo=algo, search=search.model_dump()
        )
        b = search.budget
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={k: d.ray() for k, d in search.space.items()},
            tune_config=tune.TuneConfig(
                metric="mean_return",
                mode="max",
                search_alg=OptunaSearch(seed=seed),
                scheduler=ASHAScheduler(
                    max_t=b.reports,
                    grace_period=b.grace_period,
                    reduction_factor=b.reduction_factor,
                ),
                num_samples=num_samples or search.num_samples,
                max_concurrent_trials=max(1, cpus),
            ),
            run_config=tune.RunConfig(
                storage_path=str(out), name=f"{algo}_{env_id.split('/')[-1]}", verbose=0
            ),
        )
        results = tuner.fit()
        best = results.get_best_result(metric="mean_return", mode="max", scope="all")
    finally:
        if started:
            require_ray().shutdown()
    params = {k: best.config[k] for k in search.space}
    df = best.metrics_dataframe
    score = float(df["mean_return"].iloc[-1]) if df is not None and len(df) else math.nan
    cfg = load_config(algo, env_id, overrides=params)
    path = out / f"best_{algo}.yml"
    trials = search.num_samples if num_samples is None else num_samples
    header = (
        f"# Best of a Ray Tune search ({trials} trials, Optuna + ASHA) for {algo} on {env_id}:\n"
        f"# validation mean return {score:.4f} on {search.validation_patients} training-"
        f"distribution patients.  Use: oncogym train {env_id} --algo {algo} --config {path.name}\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump({env_id: to_yaml_dict(cfg)}, sort_keys=False))
    return path, params, score
