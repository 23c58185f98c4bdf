"""The Grafana dashboard (k8s/grafana/newsgraph-dashboard.json) imports and queries real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from service.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "k8s/grafana/newsgraph-dashboard.json"
METRIC = re.compile(r"\b((?:newsgraph|process)_[a-z_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _exposed_names() -> set[str]:
    names: set[str] = set()
    registry = Metrics().registry
    assert registry is not None
    for family in registry.collect():
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_dashboard_is_importable_with_a_prometheus_input() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["pluginId"], source["type"]) == (
        "DS_PROMETHEUS", "prometheus", "datasource",
    )  # fmt: skip
    assert dashboard["id"] is None  # an import creates it
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_every_metric_the_dashboard_queries_exists() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"]]
    queried = {name for query in queries for name in METRIC.findall(query)}
    assert len(queried) >= 10
    assert queried - _exposed_names() == set()
    titles = " ".join(p["title"].lower() for p in _panels(dashboard))
    for topic in ("latency", "errors by code", "pool", "ingest", "sql statements"):
        assert topic in titles, topic
