"""The Grafana dashboard and the alert rules ask only for metrics that exist, the
dashboard is importable as Grafana expects, and the metrics port is stated once."""

import json
import re
from pathlib import Path

import jinja2
import yaml
from prometheus_client import REGISTRY

from platform_core.config.environment import DEFAULTS
from platform_core.observe import metrics
from platform_core.observe.broker_state import BrokerState, Replica, SentinelView
from platform_core.observe.queue_stats import BeatStats, QueueStats, Snapshot, WorkerStats

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
ALERTS = ROOT / "ansible/roles/platform_monitoring/templates/platform-alerts.yml.j2"
METRIC = re.compile(r"\b((?:platform|flower)_[a-z_]+)\b")


def exported_names() -> set[str]:
    """Every sample name the metrics port can serve: the platform's and Flower's."""
    snapshot = Snapshot(
        queues={
            "cert": QueueStats("cert", {0: 1}, 2.0, True, 1, 1, 3.0, 1, {"too-many-attempts": 1}, 1)
        },
        workers=[WorkerStats("host:1:abc", True, 1.0, {"cert": 1})],
        beat=BeatStats("host:2", 1.0),
        round_trips=2,
    )
    families = [*metrics.families(snapshot)]
    # The broker's replication and Sentinel series (a broker with replicas, under Sentinel).
    broker = BrokerState(
        "10.0.0.1:6379",
        [Replica("10.0.0.2:6379", "online", 0)],
        sentinels=SentinelView(quorum_ok=True, failover_epoch=1, reachable=3, listed=3),
    )
    families += metrics.broker_families(broker)
    from flower.events import get_prometheus_metrics

    get_prometheus_metrics()  # Flower's own, registered as in Flower's process
    families += [f for f in REGISTRY.collect() if f.name.startswith("flower_")]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = {metrics.GaugeMetricFamily("platform_redis_up", "").name}
    for family in families:
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def dashboard_panels():
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_every_dashboard_query_uses_exported_metrics():
    names = exported_names()
    used = {
        name
        for panel in dashboard_panels()
        for target in panel["targets"]
        for name in METRIC.findall(target["expr"])
    }
    assert used
    assert used - names == set()


def alert_rules() -> list[dict]:
    """The rules file as the role renders it with its defaults."""
    defaults = yaml.safe_load((ALERTS.parents[1] / "defaults/main.yml").read_text())
    rendered = jinja2.Template(ALERTS.read_text()).render(ansible_managed="", **defaults)
    return [rule for group in yaml.safe_load(rendered)["groups"] for rule in group["rules"]]


def test_every_alert_rule_uses_exported_metrics():
    used = {name for rule in alert_rules() for name in METRIC.findall(rule["expr"])}
    assert used
    assert used - exported_names() == set()


def test_the_dashboard_imports_as_grafana_expects():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    inputs = {f"${{{item['name']}}}" for item in dashboard["__inputs"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] in inputs, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))


def test_the_metrics_port_is_stated_once():
    defaults = yaml.safe_load(
        (ROOT / "ansible/roles/platform_metrics/defaults/main.yml").read_text()
    )
    assert defaults["platform_metrics_port"] == DEFAULTS.metrics_port
