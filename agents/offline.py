"""Offline RL on the clinic's datasets (:mod:`oncogym.agents.datasets`): learned policies and
off-policy evaluation.

Policies (scored online by :func:`oncogym.agents.evaluate.rollout` like any baseline:
:class:`OfflinePolicy` has SB3's ``predict`` and acts in the discrete env):

* :func:`train_bc` — **behaviour cloning**: an MLP over the observation and the body weight
  (standardised) with one softmax head per therapy (``MultiDiscrete``), trained by
  cross-entropy summed over the heads; greedy (argmax) actions; seeded;
* :func:`train_bc` with ``top_fraction`` — **filtered BC** (%BC): the same, on the episodes
  whose return is in the best ``top_fraction`` of the dataset only;
* :func:`train_cql` — **discrete CQL** on a factored action value (one head per therapy,
  ``Q(s, a) = Σ_j Q_j(s, a_j)``): the value-based offline method, greedy per head.

Off-policy evaluation of a target policy's value (undiscounted mean return per patient)
from a dataset alone:

* :func:`fqe` — **fitted-Q evaluation**: ``Q(s, a)`` (an MLP over the features and the
  one-hot dose levels) regressed on ``r + Q_target(s', π(s'))`` (no bootstrap after death
  or the horizon; ``day`` is in ``s``, so the finite horizon is visible); the estimate is
  the mean of ``Q(s_0, π(s_0))`` over the dataset's patients;
* :func:`wis` — **weighted per-decision importance sampling** with the behaviour's exact
  action probabilities stored in the dataset (``infos["behaviour_prob"]``) and a
  deterministic target: ``ρ_t = Π_{k ≤ t} 1[a_k = π(h_k)] / π_b(a_k | h_k)``; the
  estimate sums over steps the ``ρ_t``-weighted mean reward (an episode that has ended
  contributes 0 with its final weight); with its effective sample size.  NaN when at some
  step no episode of the dataset still follows the target (no support: nothing to weight).

Target policies are replayed along each dataset episode's observations
(:func:`target_actions`): the history-dependent baselines (protocols, adaptive rules) see
the same observation history as in the dataset, with the stored body weight.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from oncogym.envs.task import EnvParams, make_params

from ._policy import Policy, _state_of

_WEIGHT = "body_weight_kg"
FQE_AVERAGE = 10
"""FQE's estimate is the mean of its last this many rounds' estimates (the rounds oscillate
around the fixed point by a few per cent)."""


@contextlib.contextmanager
def _torch_threads(n: int = 1) -> Iterator[None]:
    """Train the small networks here on one thread: on a shared 2-core machine torch's
    intra-op threads made an Adam step of a 64×64 MLP 50× slower (78 ms against 1.6 ms)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --- the dataset as arrays ------------------------------------------------------------------------
@dataclass
class OfflineData:
    """A dataset's episodes, padded to the longest: ``obs`` ``(n, S + 1, d)``,
    ``actions`` ``(n, S, nt)``, ``rewards``/``terminated``/``truncated``/
    ``behaviour_prob`` ``(n, S)``, ``weight_kg`` ``(n,)``, ``lengths`` ``(n,)``."""

    scenario: str
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    behaviour_prob: np.ndarray
    weight_kg: np.ndarray
    lengths: np.ndarray
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """``(n, S)``: the steps that exist."""
        return np.arange(self.actions.shape[1])[None, :] < self.lengths[:, None]

    def returns(self) -> np.ndarray:
        return (self.rewards * self.valid).sum(axis=1)

    def params(self) -> EnvParams:
        kw = {k: v for k, v in self.env_kwargs.items() if k != "action_mode"}
        return make_params(self.scenario, **kw)

    def subset(self, rows: np.ndarray) -> OfflineData:
        return OfflineData(
            self.scenario,
            self.obs[rows],
            self.actions[rows],
            self.rewards[rows],
            self.terminated[rows],
            self.truncated[rows],
            self.behaviour_prob[rows],
            self.weight_kg[rows],
            self.lengths[rows],
            dict(self.env_kwargs),
            dict(self.metadata),
        )


def load_data(dataset: Any) -> OfflineData:
    """:class:`OfflineData` of a Minari dataset (a ``MinariDataset`` or its id)."""
    if isinstance(dataset, str):
        from .datasets import require_minari

        dataset = require_minari().load_dataset(dataset)
    meta = dict(dataset.storage.metadata.get("oncogym") or {})
    if "scenario" not in meta:
        raise ValueError("dataset: not an oncogym dataset (no 'oncogym' metadata)")
    eps = list(dataset.iterate_episodes())
    n = len(eps)
    S = max(len(e.rewards) for e in eps)
    d = eps[0].observations.shape[1]
    nt = eps[0].actions.shape[1]
    obs = np.zeros((n, S + 1, d), dtype=np.float32)
    actions = np.zeros((n, S, nt), dtype=np.int64)
    rewards = np.zeros((n, S))
    term = np.zeros((n, S), dtype=np.bool_)
    trunc = np.zeros((n, S), dtype=np.bool_)
    prob = np.ones((n, S))
    weight = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    for i, e in enumerate(eps):
        T = len(e.rewards)
        lengths[i] = T
        obs[i, : T + 1] = e.observations
        obs[i, T + 1 :] = e.observations[-1]
        actions[i, :T] = e.actions
        rewards[i, :T] = e.rewards
        term[i, :T] = e.terminations
        trunc[i, :T] = e.truncations
        if "behaviour_prob" in e.infos:
            prob[i, :T] = e.infos["behaviour_prob"][1:]
        if _WEIGHT in e.infos:
            weight[i] = float(e.infos[_WEIGHT][0])
    env_kwargs = {k: v for k, v in dict(meta.get("env_kwargs") or {}).items()}
    return OfflineData(
        meta["scenario"],
        obs,
        actions,
        rewards,
        term,
        trunc,
        prob,
        weight,
        lengths,
        env_kwargs,
        meta,
    )


# --- networks -----------------------------------------------------------------------------------
def _features(obs: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return np.concatenate([obs.astype(np.float32), weight.astype(np.float32)[:, None]], axis=1)


def _mlp(n_in: int, n_out: int, hidden: Sequence[int]) -> Any:
    import torch.nn as nn

    layers: list[Any] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


class OfflinePolicy(Policy):
    """A policy learned offline: an MLP over the standardised observation and body weight,
    one softmax head per therapy; greedy actions in the discrete env (SB3's ``predict``)."""

    action_mode = "discrete"

    def __init__(
        self,
        net: Any,
        n_levels: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        *,
        task: str,
        name: str = "bc",
        env_kwargs: Mapping[str, Any] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.n_levels = np.asarray(n_levels, dtype=np.int64)
        self.mean = mean.astype(np.float32)
        self.std = std.astype(np.float32)
        self.task = task
        self.name = name
        self.env_kwargs = {k: v for k, v in dict(env_kwargs or {}).items() if k != "action_mode"}
        self.info = dict(info or {})
        self._weights: np.ndarray | None = None

    def attach(self, env: Any) -> None:
        super().attach(env)
        state = _state_of(env)
        names = self.params.model.param_names
        self._weights = (
            np.asarray(state.params[:, names.index(_WEIGHT)], dtype=np.float64)
            if _WEIGHT in names and state is not None
            else None
        )

    def logits(self, obs: np.ndarray, weight: np.ndarray) -> list[np.ndarray]:
        import torch

        x = (_features(obs, weight) - self.mean) / self.std
        with torch.no_grad():
            out = self.net(torch.as_tensor(x)).numpy()
        heads, start = [], 0
        for k in self.n_levels:
            heads.append(out[:, start : start + k])
            start += k
        return heads

    def act(self, obs: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Greedy dose levels for rows of observations and body weights."""
        return np.stack([h.argmax(axis=1) for h in self.logits(obs, weight)], axis=1)

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        n = obs.shape[0]
        w = self._weights if self._weights is not None and len(self._weights) == n else None
        return self.act(obs, np.zeros(n) if w is None else w)


def train_bc(
    data: OfflineData,
    *,
    top_fraction: float | None = None,
    hidden: Sequence[int] = (64, 64),
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 3e-3,
    seed: int = 0,
    name: str | None = None,
) -> OfflinePolicy:
    """Behaviour cloning (``top_fraction=None``) or filtered BC on the episodes whose return
    is in the best ``top_fraction`` (e.g. 0.25) of the dataset (see the module docstring)."""
    with _torch_threads():
        return _train_bc(data, top_fraction, hidden, steps, batch_size, lr, seed, name)


def _train_bc(
    data: OfflineData,
    top_fraction: float | None,
    hidden: Sequence[int],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    name: str | None,
) -> OfflinePolicy:
    import torch

    _check_int("steps", steps, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    chosen = data
    if top_fraction is not None:
        if isinstance(top_fraction, bool) or not 0 < float(top_fraction) <= 1:
            raise ValueError(f"top_fraction: expected a number in (0, 1], got {top_fraction!r}")
        ret = data.returns()
        k = max(1, math.ceil(top_fraction * data.n))
        chosen = data.subset(np.sort(np.argsort(-ret, kind="stable")[:k]))
    valid = chosen.valid
    X = _features(
        chosen.obs[:, :-1][valid], np.broadcast_to(chosen.weight_kg[:, None], valid.shape)[valid]
    )
    Y = chosen.actions[valid]
    mean = X.mean(axis=0)
    std = np.where(X.std(axis=0) > 1e-6, X.std(axis=0), 1.0).astype(np.float32)
    p = data.params()
    n_levels = p.n_levels.astype(np.int64)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _mlp(X.shape[1], int(n_levels.sum()), hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    Xt = torch.as_tensor((X - mean) / std, dtype=torch.float32)
    Yt = torch.as_tensor(Y, dtype=torch.int64)
    splits = np.cumsum(n_levels)[:-1].tolist()
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(X), size=min(batch_size, len(X))))
        heads = torch.tensor_split(net(Xt[idx]), splits, dim=1)
        loss = sum(loss_fn(h, Yt[idx, j]) for j, h in enumerate(heads))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    label = name or ("bc" if top_fraction is None else f"bc_top{round(100 * top_fraction)}")
    policy = OfflinePolicy(
        net,
        n_levels,
        mean,
        std,
        task=data.scenario,
        name=label,
        env_kwargs=data.env_kwargs,
        info={
            "method": "bc" if top_fraction is None else "filtered_bc",
            "top_fraction": top_fraction,
            "episodes": chosen.n,
            "transitions": len(X),
            "steps": steps,
            "hidden": list(hidden),
            "seed": seed,
            "final_loss": float(np.mean(losses[-50:])),
        },
    )
    policy.train_accuracy = accuracy(policy, chosen)  # type: ignore[attr-defined]
    return policy


def train_cql(
    data: OfflineData,
    *,
    alpha: float = 1.0,
    gamma: float = 0.99,
    hidden: Sequence[int] = (128, 128),
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 3e-4,
    target_every: int = 100,
    seed: int = 0,
    name: str = "cql",
) -> OfflinePolicy:
    """Discrete conservative Q-learning (CQL(H), Kumar et al. 2020) on a **factored** action
    value: ``Q(s, a) = Σ_j Q_j(s, a_j)``, one head of ``n_levels[j]`` values per therapy (the
    linear decomposition of factored-action offline RL, Tang et al. 2022), so the greedy
    action is each head's argmax and the conservative term splits per head:
    ``α Σ_j (logsumexp Q_j(s, ·) − Q_j(s, a_j))``, added to the Huber TD loss against
    ``r + γ Σ_j Q'_j(s', argmax Q_j(s', ·))`` (double-Q, the target network copied every
    ``target_every`` steps; no bootstrap after death or the horizon).  The decomposition
    cannot value interactions between therapies (a combination worth more or less than its
    parts): a limitation, not a bug."""
    for field_name, value, low, high in (("alpha", alpha, 0.0, math.inf), ("gamma", gamma, 0, 1)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise ValueError(f"{field_name}: expected a number in [{low}, {high}], got {value!r}")
    _check_int("steps", steps, 1)
    _check_int("target_every", target_every, 1)
    _check_int("seed", seed, 0)
    with _torch_threads():
        return _train_cql(
            data, alpha, gamma, hidden, steps, batch_size, lr, target_every, seed, name
        )


def _train_cql(
    data: OfflineData,
    alpha: float,
    gamma: float,
    hidden: Sequence[int],
    steps: int,
    batch_size: int,
    lr: float,
    target_every: int,
    seed: int,
    name: str,
) -> OfflinePolicy:
    import copy

    import torch
    import torch.nn.functional as F

    valid = data.valid
    w = np.broadcast_to(data.weight_kg[:, None], valid.shape)[valid]
    X = _features(data.obs[:, :-1][valid], w)
    Xn = _features(data.obs[:, 1:][valid], w)
    mean = X.mean(axis=0)
    std = np.where(X.std(axis=0) > 1e-6, X.std(axis=0), 1.0).astype(np.float32)
    n_levels = data.params().n_levels.astype(np.int64)
    splits = np.cumsum(n_levels)[:-1].tolist()
    St = torch.as_tensor((X - mean) / std)
    Snt = torch.as_tensor((Xn - mean) / std)
    At = torch.as_tensor(data.actions[valid])
    Rt = torch.as_tensor(data.rewards[valid].astype(np.float32))
    Ct = torch.as_tensor((~(data.terminated | data.truncated))[valid].astype(np.float32) * gamma)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    q = _mlp(X.shape[1], int(n_levels.sum()), hidden)
    q_target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    td_hist, cql_hist = [], []
    for step in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(X), size=min(batch_size, len(X))))
        heads = torch.tensor_split(q(St[idx]), splits, dim=1)
        with torch.no_grad():
            nxt = torch.tensor_split(q(Snt[idx]), splits, dim=1)
            nxt_t = torch.tensor_split(q_target(Snt[idx]), splits, dim=1)
            v_next = sum(
                t.gather(1, o.argmax(dim=1, keepdim=True)).squeeze(1)
                for o, t in zip(nxt, nxt_t, strict=True)
            )
            y = Rt[idx] + Ct[idx] * v_next
        taken = [h.gather(1, At[idx, j : j + 1]).squeeze(1) for j, h in enumerate(heads)]
        td = F.smooth_l1_loss(sum(taken), y)
        conservative = sum(
            (torch.logsumexp(h, dim=1) - t).mean() for h, t in zip(heads, taken, strict=True)
        )
        loss = td + alpha * conservative
        opt.zero_grad()
        loss.backward()
        opt.step()
        td_hist.append(td.item())
        cql_hist.append(float(conservative.item()))
        if (step + 1) % target_every == 0:
            q_target.load_state_dict(q.state_dict())
    q.eval()
    policy = OfflinePolicy(
        q,
        n_levels,
        mean,
        std,
        task=data.scenario,
        name=name,
        env_kwargs=data.env_kwargs,
        info={
            "method": "cql",
            "alpha": alpha,
            "gamma": gamma,
            "steps": steps,
            "hidden": list(hidden),
            "seed": seed,
            "final_td": float(np.mean(td_hist[-50:])),
            "final_conservative": float(np.mean(cql_hist[-50:])),
        },
    )
    policy.train_accuracy = accuracy(policy, data)  # type: ignore[attr-defined]
    return policy


def accuracy(policy: OfflinePolicy, data: OfflineData) -> float:
    """Share of the dataset's steps where the policy's greedy action equals the data's
    (every therapy's level)."""
    valid = data.valid
    w = np.broadcast_to(data.weight_kg[:, None], valid.shape)[valid]
    pred = policy.act(data.obs[:, :-1][valid], w)
    return float(np.mean((pred == data.actions[valid]).all(axis=1)))


# --- replaying a target policy along the data -----------------------------------------------------
class _ReplayEnv:
    """What a policy's ``attach`` reads, for the dataset's patients: the task and a state
    whose only filled parameter is the body weight."""

    def __init__(self, params: EnvParams, weights: np.ndarray, mdf: float = 0.05) -> None:
        self.params = params
        self.min_dose_fraction = mdf
        m = params.model
        P = np.tile(m.params_array(), (len(weights), 1))
        if _WEIGHT in m.param_names:
            P[:, m.param_names.index(_WEIGHT)] = weights
        self.state = SimpleNamespace(params=P)
        self.num_envs = len(weights)


def target_actions(policy: Any, data: OfflineData) -> np.ndarray:
    """The target policy's dose levels at every observation of every episode,
    ``(n, S + 1, nt)``: the policy is attached to the dataset's patients and fed each
    episode's observations in order (history-dependent policies see the dataset's
    history).  Continuous-action policies go through :func:`~.datasets.levels_of`."""
    from .datasets import Discretised

    pol = policy if getattr(policy, "action_mode", "continuous") == "discrete" else None
    if pol is None:
        pol = Discretised(policy)
    env = _ReplayEnv(data.params(), data.weight_kg)
    if hasattr(pol, "attach"):
        pol.attach(env)
    S1 = data.obs.shape[1]
    out = np.zeros((data.n, S1, data.actions.shape[2]), dtype=np.int64)
    for k in range(S1):
        a, _ = pol.predict(data.obs[:, k], deterministic=True)
        out[:, k] = np.asarray(a, dtype=np.int64).reshape(data.n, -1)
    return out


# --- off-policy evaluation ------------------------------------------------------------------------
@dataclass
class OPEResult:
    estimate: float
    detail: dict[str, Any]


def wis(data: OfflineData, target: np.ndarray) -> OPEResult:
    """Weighted per-decision importance sampling of a deterministic target (its actions
    ``target`` from :func:`target_actions`), with the dataset's behaviour probabilities."""
    valid = data.valid
    match = (data.actions == target[:, :-1]).all(axis=2)
    prob = np.where(valid, data.behaviour_prob, 1.0)
    if np.any(valid & ~(prob > 0)):
        raise ValueError("behaviour_prob: a stored behaviour probability is 0 or missing")
    step_ratio = np.where(valid, match / prob, 1.0)
    rho = np.cumprod(step_ratio, axis=1)  # frozen after the episode's end
    r = np.where(valid, data.rewards, 0.0)
    den = rho.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_step = np.where(den > 0, (rho * r).sum(axis=0) / np.where(den > 0, den, 1), np.nan)
    final = rho[:, -1]
    # a step with rewards but no episode still following the target: no estimate
    steps = np.flatnonzero(valid.any(axis=0))
    supported = bool(np.all(den[steps] > 0))
    ess = float(final.sum() ** 2 / (final**2).sum()) if final.sum() > 0 else 0.0
    estimate = float(np.sum(per_step[steps])) if supported else math.nan
    return OPEResult(
        estimate,
        {
            "ess": ess,
            "matching_episodes": int((final > 0).sum()),
            "supported_steps": int((den[steps] > 0).sum()),
            "steps": len(steps),
        },
    )


def fqe(
    data: OfflineData,
    target: np.ndarray,
    *,
    gamma: float = 1.0,
    hidden: Sequence[int] = (64, 64),
    iterations: int = 150,
    steps_per_iteration: int = 40,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
) -> OPEResult:
    """Fitted-Q evaluation of a target whose actions at every dataset observation are
    ``target`` (:func:`target_actions`): ``iterations`` rounds of ``steps_per_iteration``
    Adam steps on ``(Q(s, a) − (r + γ·Q_prev(s', π(s'))))²``, ``Q_prev`` the previous round's
    network; the estimate is the mean of ``Q(s_0, π(s_0))`` over the patients, averaged
    over the last :data:`FQE_AVERAGE` rounds."""
    with _torch_threads():
        return _fqe(
            data, target, gamma, hidden, iterations, steps_per_iteration, batch_size, lr, seed
        )


def _fqe(
    data: OfflineData,
    target: np.ndarray,
    gamma: float,
    hidden: Sequence[int],
    iterations: int,
    steps_per_iteration: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> OPEResult:
    import copy

    import torch

    _check_int("iterations", iterations, 1)
    _check_int("steps_per_iteration", steps_per_iteration, 1)
    _check_int("seed", seed, 0)
    p = data.params()
    n_levels = p.n_levels.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_levels)[:-1]])

    def onehot(a: np.ndarray) -> np.ndarray:
        out = np.zeros((a.shape[0], int(n_levels.sum())), dtype=np.float32)
        out[np.arange(a.shape[0])[:, None], offsets[None, :] + a] = 1.0
        return out

    valid = data.valid
    w = np.broadcast_to(data.weight_kg[:, None], valid.shape)
    X = _features(data.obs[:, :-1][valid], w[valid])
    Xn = _features(data.obs[:, 1:][valid], w[valid])
    mean = X.mean(axis=0)
    std = np.where(X.std(axis=0) > 1e-6, X.std(axis=0), 1.0).astype(np.float32)
    S = np.concatenate([(X - mean) / std, onehot(data.actions[valid])], axis=1)
    Sn = np.concatenate([(Xn - mean) / std, onehot(target[:, 1:][valid])], axis=1)
    R = data.rewards[valid].astype(np.float32)
    cont = (~(data.terminated | data.truncated))[valid].astype(np.float32) * gamma
    X0 = _features(data.obs[:, 0], data.weight_kg)
    S0 = np.concatenate([(X0 - mean) / std, onehot(target[:, 0])], axis=1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    q = _mlp(S.shape[1], 1, hidden)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    St, Snt = torch.as_tensor(S), torch.as_tensor(Sn)
    Rt, Ct = torch.as_tensor(R), torch.as_tensor(cont)
    history = []
    for _ in range(iterations):
        prev = copy.deepcopy(q)
        with torch.no_grad():
            y = Rt + Ct * prev(Snt).squeeze(1)
        for _ in range(steps_per_iteration):
            idx = torch.as_tensor(rng.integers(0, len(S), size=min(batch_size, len(S))))
            loss = torch.mean((q(St[idx]).squeeze(1) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            history.append(float(q(torch.as_tensor(S0)).mean()))
    estimate = float(np.mean(history[-FQE_AVERAGE:]))
    return OPEResult(estimate, {"last_rounds": history[-FQE_AVERAGE:], "transitions": len(S)})


def select_by_fqe(
    data: OfflineData, candidates: Mapping[str, Any], **fqe_kwargs: Any
) -> tuple[str, dict[str, float]]:
    """Offline model selection: the candidate policy with the highest FQE estimate on
    ``data`` (no simulator, no test patient); returns its key and every estimate."""
    if not candidates:
        raise ValueError("candidates: expected at least one policy")
    estimates = {
        k: fqe(data, target_actions(pol, data), **fqe_kwargs).estimate
        for k, pol in candidates.items()
    }
    return max(estimates, key=estimates.get), estimates
