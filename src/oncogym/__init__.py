"""oncogym: reinforcement-learning environments for cancer therapy scheduling.

The dynamics core (this package) is NumPy + Numba only.  ``oncogym.envs`` holds the
Gymnasium environments and ``oncogym.agents`` the policies, training and command
line.  No core module imports them.  This package face imports ``oncogym.envs`` as its
last step, when gymnasium is installed, so that ``import oncogym`` registers the
environment ids with ``gymnasium.make`` (Gymnasium >= 1.0 no longer loads plugins from
the ``gymnasium.envs`` entry-point group, so an import is the only way).  torch and
stable-baselines3 stay unimported until ``oncogym.envs.SB3VecEnv`` is used.
"""

from __future__ import annotations

from oncogym import models, radiotherapy
from oncogym.simulate import (
    BatchTrajectory,
    Dose,
    SimulationError,
    Trajectory,
    simulate,
    simulate_batch,
)

__version__ = "0.1.0"

__all__ = [
    "BatchTrajectory",
    "Dose",
    "SimulationError",
    "Trajectory",
    "__version__",
    "models",
    "radiotherapy",
    "simulate",
    "simulate_batch",
]

try:  # registers the Gymnasium ids; the core works without gymnasium
    import gymnasium as _gymnasium  # noqa: F401
except ImportError:  # pragma: no cover - gymnasium is a dependency; kept for a bare core
    pass
else:
    from oncogym import envs as _envs  # noqa: F401
