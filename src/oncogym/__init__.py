"""oncogym: reinforcement-learning environments for cancer therapy scheduling.

The dynamics core (this package) is NumPy + Numba only.  ``oncogym.envs`` holds the
Gymnasium environments and ``oncogym.agents`` the policies, training and command
line; they are imported lazily so that the core never pulls in gymnasium or torch.
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
