"""Grafana's own dashboard model (``grafana-foundation-sdk``, the ``test`` extra) as a check
of generated dashboards: decoded by the model and encoded back, nothing may change."""

from __future__ import annotations

import json
from typing import Any

import pytest


def _lost_in_grafanas_model(ours: Any, model: Any, path: str = "") -> list[str]:
    """Where *ours* differs from Grafana's model re-encoding of it: a key the model does
    not know is dropped by it, a value of the wrong shape is changed."""
    if isinstance(ours, dict):
        if not isinstance(model, dict):
            return [f"{path}: {model!r}"]
        return [
            lost
            for key, value in ours.items()
            for lost in (
                _lost_in_grafanas_model(value, model[key], f"{path}.{key}")
                if key in model
                else [f"{path}.{key} (unknown to the model)"]
            )
        ]
    if isinstance(ours, list):
        if not isinstance(model, list) or len(model) != len(ours):
            return [f"{path}: {model!r}"]
        return [
            lost
            for i, (a, b) in enumerate(zip(ours, model))
            for lost in _lost_in_grafanas_model(a, b, f"{path}[{i}]")
        ]
    return [] if ours == model and type(ours) is type(model) else [f"{path}: {ours!r} -> {model!r}"]


def check_with_grafanas_model(board: dict[str, Any]) -> None:
    """Decode *board* with Grafana's dashboard model (panels by their plugin, targets by
    their datasource) and encode it back: nothing we write may be lost or reshaped."""
    sdk = pytest.importorskip("grafana_foundation_sdk", reason="the 'test' extra")
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel
    from grafana_foundation_sdk.models.prometheus import Dataquery
    from grafana_foundation_sdk.models.timeseries import Options

    assert sdk is not None
    plugins.register_default_plugins()
    model = Dashboard.from_json(board)
    assert model.schema_version == board["schemaVersion"] and model.uid == board["uid"]
    assert model.panels
    for panel in model.panels:
        if isinstance(panel, RowPanel):
            continue
        assert isinstance(panel, Panel) and isinstance(panel.options, Options)
        assert panel.targets and all(isinstance(t, Dataquery) for t in panel.targets)
    back = json.loads(json.dumps(model, cls=JSONEncoder))
    assert _lost_in_grafanas_model(board, back) == []
