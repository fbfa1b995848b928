"""The rendered Kustomize trees (base and every overlay): what the cluster will be given.

Schema validity is deploy/check.py's job (kubernetes-validate, checkov); these check that the
objects fit together: selectors select the pods, names and ports refer to what exists, the
fleet file and keys arrive where the router reads them, and the pod is locked down.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.support import (
    TREES,
    Render,
    check,
    fleet_source,
    keys_source,
    project_version,
)

COMMON_LABELS = ("name", "instance", "version", "component", "part-of", "managed-by")
# Prometheus duration, as the ServiceMonitor CRD's schema has it.
DURATION = re.compile(r"^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$")
# Endpoint fields of monitoring.coreos.com/v1 ServiceMonitor that this file may use.
ENDPOINT_FIELDS = {
    "port",
    "targetPort",
    "path",
    "scheme",
    "interval",
    "scrapeTimeout",
    "authorization",
    "tlsConfig",
    "honorLabels",
    "relabelings",
    "metricRelabelings",
}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", selector)
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def pod_labels(render: Render) -> dict[str, str]:
    return dict(render.pod["metadata"]["labels"])


def test_every_object_has_the_common_labels(render: Render) -> None:
    for obj in render.objects:
        if obj["kind"] == "Namespace":
            continue
        labels = obj["metadata"].get("labels", {})
        for key in COMMON_LABELS:
            assert f"app.kubernetes.io/{key}" in labels, (obj["kind"], key)
        assert labels["app.kubernetes.io/version"] == project_version()
    assert set(pod_labels(render)) >= {f"app.kubernetes.io/{k}" for k in COMMON_LABELS}


def test_pod_is_locked_down(render: Render) -> None:
    pod = render.pod["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert render.one("ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == render.one("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    context = render.container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == pod["securityContext"]["runAsUser"] >= 10000
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    tmp = next(m for m in render.container["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_resources_are_bounded(render: Render) -> None:
    resources = render.container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind


def test_probes_use_the_router_endpoints(render: Render) -> None:
    container = render.container
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe


def test_spread_across_nodes_and_zones(render: Render) -> None:
    constraints = render.pod["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in constraints:
        assert selects(constraint["labelSelector"], pod_labels(render))


def test_service_reaches_the_pods(render: Render) -> None:
    deployment = render.one("Deployment")
    assert selects(deployment["spec"]["selector"], pod_labels(render))
    service = render.one("Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert selects(service["spec"]["selector"], pod_labels(render))
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]


def test_prometheus_finds_metrics_both_ways(render: Render) -> None:
    annotations = render.pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(render.container["ports"][0]["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"

    monitor = render.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = render.one("Service")
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= ENDPOINT_FIELDS, set(endpoint) - ENDPOINT_FIELDS
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            assert DURATION.match(endpoint[key]), endpoint[key]


def test_disruption_budget_and_autoscaler(render: Render) -> None:
    budget = render.one("PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert selects(budget["spec"]["selector"], pod_labels(render))

    hpa = render.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployment = render.one("Deployment")
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # The HPA owns the count; a replicas field would reset it on every apply.
    assert "replicas" not in deployment["spec"]


def test_network_policy_opens_only_what_the_router_uses(render: Render) -> None:
    policy = render.one("NetworkPolicy")["spec"]
    assert selects(policy["podSelector"], pod_labels(render))
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress = [(p["port"], p["protocol"]) for rule in policy["ingress"] for p in rule["ports"]]
    assert ingress == [("http", "TCP")]
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (11434, "TCP"), (6379, "TCP")}


def mount(render: Render, volume_kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volumeMount, volume) of the one volume of this kind."""
    volumes = [v for v in render.pod["spec"]["volumes"] if volume_kind in v]
    assert len(volumes) == 1
    found = [m for m in render.container["volumeMounts"] if m["name"] == volumes[0]["name"]]
    assert len(found) == 1
    return found[0], volumes[0]


def test_fleet_file_arrives_from_the_hashed_configmap(render: Render) -> None:
    config_map = render.one("ConfigMap")
    name = config_map["metadata"]["name"]
    assert re.fullmatch(r"jarvis-router-fleet-[a-z0-9]{10}", name), "hash suffix rolls pods"
    volume_mount, volume = mount(render, "configMap")
    assert volume["configMap"]["name"] == name
    assert (volume_mount["mountPath"], volume_mount["subPath"]) == (
        "/etc/jarvis/fleet.yaml",
        "fleet.yaml",
    )
    assert volume_mount["readOnly"] is True
    assert config_map["data"]["fleet.yaml"] == fleet_source(render.name).read_text()


def test_keys_arrive_from_the_hashed_secret(render: Render) -> None:
    secret = render.one("Secret")
    name = secret["metadata"]["name"]
    assert re.fullmatch(r"jarvis-router-api-keys-[a-z0-9]{10}", name)
    volume_mount, volume = mount(render, "secret")
    assert volume["secret"]["secretName"] == name
    assert volume_mount["readOnly"] is True
    fleet = yaml.safe_load(render.one("ConfigMap")["data"]["fleet.yaml"])
    keys_path = Path(fleet["api_keys_file"])
    assert str(keys_path.parent) == volume_mount["mountPath"]
    assert set(secret["data"]) == {keys_path.name}
    content = base64.b64decode(secret["data"][keys_path.name]).decode()
    assert content == keys_source(render.name).read_text()


def test_grace_period_covers_prestop_and_drain(render: Render) -> None:
    fleet = yaml.safe_load(render.one("ConfigMap")["data"]["fleet.yaml"])
    pre_stop = render.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = render.pod["spec"]["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + fleet["server"]["shutdown_grace_s"] + 10


def test_overlays_put_everything_in_their_namespace(renders: dict[str, Render]) -> None:
    for name, render in renders.items():
        if name == "base":
            assert all("namespace" not in o["metadata"] for o in render.objects)
            continue
        (namespace,) = render.all("Namespace")
        ns = namespace["metadata"]["name"]
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        for obj in render.objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == ns, (name, obj["kind"])


def test_a_fleet_change_renames_the_configmap(kubectl: str, tmp_path: Path) -> None:
    """The hash suffix is the config checksum: an edit must change the pod template."""
    tree = tmp_path / "base"
    shutil.copytree(TREES["base"], tree)

    def volume_name() -> str:
        docs = [d for d in yaml.safe_load_all(check.render(kubectl, tree)) if d]
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        return str(next(v["configMap"]["name"] for v in volumes if "configMap" in v))

    before = volume_name()
    with (tree / "fleet.yaml").open("a") as f:
        f.write("# edited\n")
    assert volume_name() != before
