"""RecurrentPPO with the LSTM run once per sequence in the gradient update.

sb3-contrib's :class:`~sb3_contrib.common.recurrent.policies.RecurrentActorCriticPolicy`
steps its LSTM through a minibatch one time step at a time, in Python, whenever any sequence
in it starts an episode (it must reset the hidden state there).  Its rollout buffer cuts
sequences at episode starts, so a reset can only fall on a sequence's *first* step; with
oncogym's episodes (104 weekly decisions, rollouts of 128 steps) nearly every minibatch holds
one, and the update spent most of a run in that loop.  :class:`SequenceLstmPolicy` resets the
state at the first step and runs the LSTM over the whole sequence in one call when no later
step starts an episode (the library's loop otherwise), which computes the same recurrence
(``tests/test_recurrent.py`` checks outputs and gradients against the library's).

:class:`RecurrentPPO` is sb3-contrib's algorithm with ``"MlpLstmPolicy"`` naming this
policy, so configs, saved models and hyperparameters are unchanged.
"""

from __future__ import annotations

from typing import ClassVar

import torch as th
from sb3_contrib import RecurrentPPO as _RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from torch import nn

__all__ = ["RecurrentPPO", "SequenceLstmPolicy"]


class SequenceLstmPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's MLP-LSTM actor-critic, one LSTM call per sequence where it can."""

    @staticmethod
    def _process_sequence(
        features: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        lstm: nn.LSTM,
    ) -> tuple[th.Tensor, th.Tensor]:
        n_seq = lstm_states[0].shape[1]
        # (padded batch, features) -> (max length, n_seq, features), as the library does
        sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
        starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)
        if bool(th.all(starts[1:] == 0.0)):
            keep = (1.0 - starts[0]).view(1, n_seq, 1)
            output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
            return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states
        return RecurrentActorCriticPolicy._process_sequence(
            features, lstm_states, episode_starts, lstm
        )


class RecurrentPPO(_RecurrentPPO):
    """sb3-contrib's RecurrentPPO; ``"MlpLstmPolicy"`` is :class:`SequenceLstmPolicy`."""

    policy_aliases: ClassVar[dict[str, type]] = {
        **_RecurrentPPO.policy_aliases,
        "MlpLstmPolicy": SequenceLstmPolicy,
    }
