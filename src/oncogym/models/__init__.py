"""Model registry: ``available()`` lists names, ``get(name)`` returns a :class:`Model`."""

from __future__ import annotations

from oncogym.models import (
    cartmath2021,
    depillis2006,
    friberg2002,
    kimmel2021,
    kirschner_panetta1998,
    kuznetsov1994,
    oncoimmune,
)
from oncogym.models.base import Model, Param, State, Therapy

_REGISTRY: dict[str, Model] = {}


def register(model: Model) -> None:
    """Add a model to the registry (name must be new)."""
    if model.name in _REGISTRY:
        raise ValueError(f"model: {model.name!r} is already registered")
    _REGISTRY[model.name] = model


def available() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Model:
    """The registered model called ``name``."""
    if isinstance(name, Model):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"model: unknown model {name!r}; allowed: {', '.join(available())}"
        ) from None


for _m in (
    kuznetsov1994.MODEL,
    kirschner_panetta1998.MODEL,
    depillis2006.MODEL,
    depillis2006.MODEL_P10,
    cartmath2021.MODEL,
    kimmel2021.MODEL,
    friberg2002.MODEL,
    oncoimmune.MODEL,
):
    register(_m)

__all__ = ["Model", "Param", "State", "Therapy", "available", "get", "register"]
