"""Training configurations: YAML hyperparameters, validated by pydantic.

The files are laid out as rl-baselines3-zoo's (keyed by env id over a ``default:`` entry)
but are not rl_zoo3 files: normalisation is a nested ``normalize:`` mapping of
VecNormalize's arguments (rl_zoo3 passes its keys on, and VecNormalize rejects ``obs``),
schedules are ``lin_<value>`` strings, and ``rl_zoo3.train`` does not know the oncogym env
ids' vector entry point.  Train with ``oncogym train`` (or :func:`oncogym.agents.train.train`).

A hyperparameter file (``oncogym/agents/hyperparams/<algo>.yml``) maps env ids to entries,
with a ``default:`` entry for ids it does not name::

    default:
      n_envs: 16
      n_timesteps: 1000000
    oncogym/Melanoma-v1:
      n_envs: 64
      n_timesteps: 1000000
      policy: MlpPolicy
      normalize: {obs: true, reward: true}
      env_kwargs: {observation: clinical}
      policy_kwargs: {net_arch: [64, 64], activation_fn: tanh}
      gamma: 0.995          # any argument of the algorithm's constructor
      learning_rate: lin_3e-4

An env's entry is laid over ``default`` key by key (a key it does not set keeps the
default's value).  Every key is checked: the common keys of :class:`RunConfig`, the
arguments of the algorithm's constructor that a YAML value can express (types from its
signature), the environment arguments of :class:`oncogym.envs.OncologyVectorEnv` and the
arguments of the policy class.  Nothing is ``eval``-ed: activation functions and
optimizers are given by name, a linear schedule as ``lin_<initial value>``, exploration
noise as ``action_noise: {kind: normal, sigma: 0.1}``, the Lagrangian of
``ppo_lagrangian`` as ``lagrangian: {cost_budget: 0.3, lambda_lr: 0.1, lambda_init: 0.0}``
(:class:`LagrangianConfig`; other algorithms refuse the key).  A wrong key or value raises
:class:`ConfigError` with one line naming the key and the allowed keys.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    create_model,
    field_validator,
)

DEFAULT_KEY = "default"

# Constructor arguments that the trainer sets itself (or that YAML cannot express).
MANAGED_ARGS = frozenset(
    {"self", "policy", "env", "seed", "tensorboard_log", "policy_kwargs", "_init_setup_model"}
)
# OncologyVectorEnv arguments that come from the env id or the trainer, not from env_kwargs.
_ENV_MANAGED = frozenset({"self", "num_envs", "task", "max_episode_steps", "render_mode"})

ACTIVATIONS = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
}
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "sgd": "SGD"}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalizeConfig(_Strict):
    """``VecNormalize`` settings (running mean/std of observations and of returns)."""

    obs: bool = True
    """Normalise observations."""
    reward: bool = True
    """Scale rewards by the running std of the discounted return (gamma of the algorithm)."""
    clip_obs: float = Field(10.0, gt=0)
    """Clip normalised observations to ±clip_obs."""
    clip_reward: float = Field(10.0, gt=0)
    """Clip normalised rewards to ±clip_reward."""


class NoiseConfig(_Strict):
    """Exploration noise of an off-policy algorithm (TD3, SAC), per action dimension."""

    kind: Literal["normal", "ornstein_uhlenbeck"] = "normal"
    sigma: float = Field(0.1, ge=0)
    """Standard deviation, in units of the action (the continuous action is in [0, 1])."""


class LagrangianConfig(_Strict):
    """The Lagrangian of constrained PPO (``ppo_lagrangian``): PPO on ``r − λ·cost``, with
    ``λ ← max(0, λ + lambda_lr · (cost − cost_budget))`` after every rollout, the cost by
    ``dual_cost`` (:mod:`oncogym.agents.lagrangian`)."""

    cost_budget: float | None = Field(None, ge=0, allow_inf_nan=False)
    """New grade >= 3 toxicities allowed per patient-episode (a number >= 0); ``None``: the
    scenario's ``cost_budget.events`` (its standard of care's)."""
    lambda_lr: float = Field(1.0, gt=0, allow_inf_nan=False)
    """Step of the dual ascent: QALYs per event, per event per episode over the budget."""
    lambda_init: float = Field(0.0, ge=0, allow_inf_nan=False)
    """λ before the first update (QALYs per event)."""
    dual_cost: Literal["training", "validation"] = "validation"
    """The cost the dual step compares with the budget: ``"training"``, the mean cost of the
    training episodes that ended in the rollout (the stochastic, exploring policy's);
    ``"validation"``, the grade >= 3 events per patient of the current policy acting
    deterministically, as it is evaluated, on ``dual_patients`` validation patients
    (:func:`oncogym.agents.evaluate.validation_cohort`: the training distribution)."""
    dual_patients: PositiveInt = 128
    """Validation patients of ``dual_cost: validation``."""


class RunConfig(_Strict):
    """The keys every algorithm takes; :func:`config_model` adds the algorithm's own."""

    n_envs: PositiveInt = 16
    """Patients stepped together (the native vector env's ``num_envs``)."""
    n_timesteps: PositiveInt = 1_000_000
    """Total environment steps (summed over patients)."""
    policy: str | None = None
    """Policy name of the algorithm (``MlpPolicy``; ``MlpLstmPolicy`` for RecurrentPPO)."""
    normalize: NormalizeConfig | None = None
    """VecNormalize settings; ``true`` for the defaults, ``false``/absent for none."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments of the environment (``OncologyVectorEnv``), e.g. ``observation: full``."""
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments of the policy class (``net_arch``, ``activation_fn`` by name, ...)."""
    lagrangian: LagrangianConfig | None = None
    """The Lagrangian of ``ppo_lagrangian`` (only that algorithm takes it)."""

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize_flag(cls, value: Any) -> Any:
        if value is True:
            return NormalizeConfig()
        if value is False:
            return None
        return value

    @field_validator("env_kwargs")
    @classmethod
    def _env_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = env_kwarg_names()
        for key in value:
            if key not in allowed:
                raise ValueError(f"unknown key {key!r}; allowed keys: {', '.join(sorted(allowed))}")
        return value

    def hyperparams(self) -> dict[str, Any]:
        """The algorithm's own arguments that the config sets (others keep SB3's defaults)."""
        common = set(RunConfig.model_fields)
        return {k: getattr(self, k) for k in self.model_fields_set if k not in common}


@cache
def env_kwarg_names() -> frozenset[str]:
    """The ``env_kwargs`` keys a config may set (``OncologyVectorEnv``'s arguments)."""
    from oncogym.envs import OncologyVectorEnv

    params = inspect.signature(OncologyVectorEnv.__init__).parameters
    return frozenset(params) - _ENV_MANAGED


def _schedule_string(value: Any) -> Any:
    if isinstance(value, str):
        parse_schedule(value)
    return value


def parse_schedule(value: float | str) -> float | Callable[[float], float]:
    """A constant, or ``"lin_<x>"``: linear from ``x`` at the start to 0 at the end."""
    if isinstance(value, str):
        head, _, number = value.partition("_")
        try:
            initial = float(number)
        except ValueError:
            initial = float("nan")
        if head != "lin" or not initial == initial:
            raise ValueError(f"expected a number or 'lin_<number>', got {value!r}")
        return lambda progress_remaining: progress_remaining * initial
    return float(value)


_SIMPLE = (int, float, bool, str, type(None), typing.Any)


def _yaml_type(annotation: Any) -> Any:
    """The YAML-expressible form of a constructor annotation, or None when there is none."""
    from stable_baselines3.common.noise import ActionNoise

    if annotation in _SIMPLE:
        return annotation
    if annotation is ActionNoise:
        return NoiseConfig
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        mapped = []
        for arg in args:
            if arg is Callable or typing.get_origin(arg) is Callable:
                mapped.append(str)  # a schedule: "lin_<x>", checked by a validator
                continue
            if getattr(arg, "__name__", "") == "device":  # torch.device | str
                continue
            m = _yaml_type(arg)
            if m is None:
                return None
            mapped.append(m)
        if not mapped:
            return None
        return typing.Union[tuple(mapped)]  # noqa: UP007
    if origin in (dict, tuple, list):
        if all(a is Ellipsis or _yaml_type(a) is not None for a in args):
            return annotation
        return None
    return None


@cache
def config_model(algo_class: type) -> type[RunConfig]:
    """A pydantic model of the keys a config for ``algo_class`` may hold."""
    fields: dict[str, Any] = {}
    schedule_fields: list[str] = []
    for name, param in inspect.signature(algo_class.__init__).parameters.items():
        if name in MANAGED_ARGS or name in RunConfig.model_fields:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        tp = _yaml_type(param.annotation)
        if tp is None:
            continue
        if any(
            a is Callable or typing.get_origin(a) is Callable
            for a in typing.get_args(param.annotation)
        ):
            schedule_fields.append(name)
        default = None if param.default is inspect.Parameter.empty else param.default
        fields[name] = (tp | None, default)
    validators: dict[str, Any] = {}
    if schedule_fields:
        validators["_schedules"] = field_validator(*schedule_fields)(
            classmethod(lambda cls, v: _schedule_string(v))
        )
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{algo_class.__name__}Config",
        __base__=RunConfig,
        __validators__=validators,
        **fields,
    )


def allowed_keys(algo_class: type) -> list[str]:
    return sorted(config_model(algo_class).model_fields)


def _format_errors(err: ValidationError, where: str, model: type[BaseModel]) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = model
            for step in e["loc"][:-1]:
                field = parent.model_fields.get(str(step))
                ann = field.annotation if field is not None else None
                sub = [a for a in typing.get_args(ann) if isinstance(a, type)] or [ann]
                parent = next(
                    (a for a in sub if isinstance(a, type) and issubclass(a, BaseModel)), parent
                )
            allowed = ", ".join(sorted(parent.model_fields))
            parts.append(f"unknown key {loc!r}; allowed keys: {allowed}")
        elif e["type"] == "value_error":
            parts.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
        else:
            parts.append(f"{loc}: {e['msg']} (got {e.get('input')!r})")
    return f"{where}: " + "; ".join(parts)


def validate(algo_class: type, data: Mapping[str, Any], where: str = "config") -> RunConfig:
    """Validate one (merged) entry; raise :class:`ConfigError` naming the bad key."""
    model = config_model(algo_class)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    try:
        config = model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_format_errors(err, where, model)) from None
    check_policy_kwargs(algo_class, config, where)
    return config


def check_policy_kwargs(algo_class: type, config: RunConfig, where: str) -> None:
    """Reject ``policy_kwargs`` keys that the policy class does not take."""
    policy = config.policy or default_policy(algo_class)
    aliases = getattr(algo_class, "policy_aliases", {})
    if policy not in aliases:
        raise ConfigError(
            f"{where}: policy {policy!r} is not a policy of {algo_class.__name__}; "
            f"allowed: {', '.join(sorted(aliases))}"
        )
    names: set[str] = set()
    for klass in inspect.getmro(aliases[policy]):
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= set(inspect.signature(init).parameters)
    names -= {"self", "observation_space", "action_space", "lr_schedule", "args", "kwargs"}
    for key in config.policy_kwargs:
        if key not in names:
            raise ConfigError(
                f"{where}: unknown policy_kwargs key {key!r}; allowed keys: "
                f"{', '.join(sorted(names))}"
            )


def default_policy(algo_class: type) -> str:
    aliases = getattr(algo_class, "policy_aliases", {})
    return "MlpLstmPolicy" if "MlpLstmPolicy" in aliases else "MlpPolicy"


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of env ids to entries")
    return data


def select_entry(data: Mapping[str, Any], env_id: str, where: str) -> dict[str, Any]:
    """``default`` with the env's entry laid over it, key by key."""
    if DEFAULT_KEY not in data and env_id not in data:
        # a flat file, or one for other envs only, would silently train with built-in defaults
        keys = ", ".join(map(repr, list(data)[:8])) or "none"
        raise ConfigError(
            f"{where}: no {DEFAULT_KEY!r} or {env_id!r} entry (top-level keys: {keys}); the "
            f"file is keyed by env id, e.g. '{DEFAULT_KEY}:' then the hyperparameters indented"
        )
    merged: dict[str, Any] = {}
    for key in (DEFAULT_KEY, env_id):
        entry = data.get(key)
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} [{key}]: expected a mapping, got {type(entry).__name__}")
        merged.update(entry)
    return merged


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key = "a.b"`` (creating mappings on the way)."""
    *parents, last = key.split(".")
    node = data
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {} if child is None else dict(child) if isinstance(child, Mapping) else None
            if child is None:
                raise ConfigError(f"override {key!r}: {p!r} is not a mapping")
            node[p] = child
        node = child
    node[last] = value


def to_yaml_dict(config: RunConfig) -> dict[str, Any]:
    """The keys that were set (common keys always), as plain YAML data."""
    data = config.model_dump(mode="json")
    common = set(RunConfig.model_fields)
    out = {k: v for k, v in data.items() if k in common or k in config.model_fields_set}
    if out.get("lagrangian") is None:
        out.pop("lagrangian", None)  # the other algorithms' files stay as they were
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def build_policy_kwargs(policy_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn names into objects: ``activation_fn`` → ``torch.nn`` class, ``optimizer_class``."""
    import torch

    out = dict(policy_kwargs)
    for key, table, module in (
        ("activation_fn", ACTIVATIONS, torch.nn),
        ("optimizer_class", OPTIMIZERS, torch.optim),
    ):
        if key in out:
            name = out[key]
            if not isinstance(name, str) or name.lower() not in table:
                raise ConfigError(
                    f"policy_kwargs.{key}: expected one of {', '.join(table)}, got {name!r}"
                )
            out[key] = getattr(module, table[name.lower()])
    return out
