"""RecurrentPPO's one-call-per-sequence LSTM (oncogym.agents.recurrent) computes what
sb3-contrib's step-by-step loop computes: outputs, states and gradients."""

from __future__ import annotations

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from oncogym.agents.recurrent import RecurrentPPO, SequenceLstmPolicy
from oncogym.agents.train import ALGOS
from oncogym.envs import SB3VecEnv

LIBRARY = RecurrentActorCriticPolicy._process_sequence
OURS = SequenceLstmPolicy._process_sequence


def _inputs(starts: th.Tensor, n_feat: int = 7, hidden: int = 8, seed: int = 0):
    gen = th.Generator().manual_seed(seed)
    n_seq, length = starts.shape
    lstm = nn_lstm(n_feat, hidden, seed)
    features = th.randn(n_seq * length, n_feat, generator=gen, requires_grad=True)
    states = (th.randn(1, n_seq, hidden, generator=gen), th.randn(1, n_seq, hidden, generator=gen))
    return features, states, starts.reshape(-1).float(), lstm


def nn_lstm(n_feat: int, hidden: int, seed: int) -> th.nn.LSTM:
    th.manual_seed(seed)
    return th.nn.LSTM(n_feat, hidden)


def _run(fn, features, states, starts, lstm):
    lstm.zero_grad()
    features.grad = None
    out, (h, c) = fn(features, states, starts, lstm)
    (out.square().sum() + h.sum() + 2 * c.sum()).backward()
    grads = [features.grad.clone()] + [p.grad.clone() for p in lstm.parameters()]
    return out.detach(), h.detach(), c.detach(), grads


def _same(a, b) -> None:
    for x, y in zip(a[:3], b[:3], strict=True):
        th.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    for x, y in zip(a[3], b[3], strict=True):
        th.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_resets_at_sequence_starts_match_the_library_loop() -> None:
    # what the rollout buffer makes: an episode can start only at a sequence's first step
    starts = th.zeros(6, 12)
    starts[[0, 2, 3], 0] = 1.0
    args = _inputs(starts)
    ours = _run(OURS, *args)
    library = _run(LIBRARY, *args)
    _same(ours, library)
    # the reset matters: without it the outputs differ
    plain = _run(LIBRARY, args[0], args[1], th.zeros_like(args[2]), args[3])
    assert not th.allclose(ours[0], plain[0])


def test_a_start_inside_a_sequence_is_stepped_like_the_library() -> None:
    starts = th.zeros(4, 9)
    starts[1, 0] = 1.0
    starts[2, 5] = 1.0
    args = _inputs(starts, seed=3)
    _same(_run(OURS, *args), _run(LIBRARY, *args))


def test_data_collection_single_steps_match() -> None:
    starts = th.tensor([[1.0], [0.0], [1.0]])
    args = _inputs(starts, seed=5)
    _same(_run(OURS, *args), _run(LIBRARY, *args))


def test_the_benchmark_algorithm_uses_the_sequence_policy() -> None:
    klass = ALGOS["recurrent_ppo"].load_class()
    assert klass is RecurrentPPO
    assert klass.policy_aliases["MlpLstmPolicy"] is SequenceLstmPolicy


def test_update_on_a_real_rollout_equals_the_library_and_takes_one_call() -> None:
    """On an oncogym rollout (episodes ending inside it), every minibatch goes through the
    single LSTM call (no episode starts after a sequence's first step), and the update's
    log-probabilities, values and entropies equal the library policy's on the same
    weights."""
    env = SB3VecEnv(num_envs=4, task="melanoma", horizon_days=70.0)  # 10-step episodes
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        seed=0,
        policy_kwargs={"lstm_hidden_size": 16, "net_arch": {"pi": [16], "vf": [16]}},
    )
    model.learn(total_timesteps=128)  # fills the rollout buffer
    policy = model.policy
    assert isinstance(policy, SequenceLstmPolicy)
    n_batches = 0
    for batch in model.rollout_buffer.get(batch_size=64):
        n_batches += 1
        args = (batch.observations, batch.actions, batch.lstm_states, batch.episode_starts)
        with th.no_grad():
            ours = policy.evaluate_actions(*args)
            policy.__class__ = RecurrentActorCriticPolicy  # the library's loop, same weights
            try:
                library = policy.evaluate_actions(*args)
            finally:
                policy.__class__ = SequenceLstmPolicy
        for x, y in zip(ours, library, strict=True):
            th.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
        # the fast path: no step-by-step loop on what the buffer produces
        starts = batch.episode_starts.reshape(batch.lstm_states.pi[0].shape[1], -1)
        assert bool(th.all(starts[:, 1:] == 0.0))
        assert starts[:, 0].any()  # and episodes do start in these minibatches
    assert n_batches >= 2
