"""Gymnasium environments on the oncogym core (installed as ``oncogym.envs``).

Environments arrive with the environments issue; this package exists so that the
distribution's layout (core ← envs ← agents) is in place.
"""
