"""Policies, training, evaluation and the ``oncogym`` command (installed as ``oncogym.agents``)."""
