"""The Kubernetes manifests (deploy/k8s): `kubectl kustomize` renders them, every built-in kind is
valid against the Kubernetes JSON schemas (kubernetes-validate, which ships them: nothing is
downloaded), the ServiceMonitor (a CRD the schemas lack) points at a real port, the configuration
file is one SentinelStream loads, and the probes and the drain fit the server's shutdown."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy_containers import healthcheck_command

from sentinel.config import load_settings

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests are meant for (native sidecars, HPA v2)

kubectl = shutil.which("kubectl")


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """The rendered manifests by "Kind/name"."""
    if kubectl is None:
        pytest.skip("kubectl is missing: render with `kubectl kustomize deploy/k8s` and check by hand")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


def test_kustomize_renders_every_kind_the_deployment_needs(rendered: dict[str, dict[str, Any]]) -> None:
    kinds = {key.split("/")[0] for key in rendered}
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
    }
    assert all(
        d["metadata"].get("namespace") == "sentinel" for k, d in rendered.items() if k != "Namespace/sentinel"
    )


def test_the_manifests_are_valid_against_the_kubernetes_schemas(rendered: dict[str, dict[str, Any]]) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (dev extras)"
    )
    for key, document in rendered.items():
        if key.startswith("ServiceMonitor/"):
            continue  # a CRD: checked below
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)  # raises ValidationError
    broken = {**rendered["Deployment/sentinel"]}
    broken["spec"] = {**broken["spec"], "replicas": "two"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_service_monitor_scrapes_a_port_of_the_service(rendered: dict[str, dict[str, Any]]) -> None:
    monitor = rendered["ServiceMonitor/sentinel"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = rendered["Service/sentinel"]
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports


def test_the_config_map_holds_a_configuration_sentinel_loads(
    rendered: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (config_map,) = [d for k, d in rendered.items() if k.startswith("ConfigMap/sentinel-config-")]
    config = tmp_path / "sentinel.toml"
    config.write_text(config_map["data"]["sentinel.toml"])
    # through monkeypatch, so that it is unset again after the test (load_settings(path) exports it)
    monkeypatch.setenv("SENTINEL_CONFIG", str(config))
    settings = load_settings()
    deployment = rendered["Deployment/sentinel"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": settings.port, "metrics": settings.metrics_port}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    for path in (settings.tls_cert_file, settings.tls_key_file, settings.auth_jwks_file):
        assert path is not None and str(path.parent) in mounts
    assert str(settings.data_dir) in mounts
    # the drain fits: preStop, then SIGTERM and shutdown_grace_s, with room for the ledger's flush
    (pre_stop_seconds,) = [int(a) for a in container["lifecycle"]["preStop"]["exec"]["command"][1:]]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop_seconds + settings.shutdown_grace_s + 10


def test_the_probes_run_the_images_healthcheck(rendered: dict[str, dict[str, Any]]) -> None:
    """The same command as the Dockerfile's HEALTHCHECK, which tests/test_deploy_containers.py runs
    against a live TLS server."""
    (container,) = rendered["Deployment/sentinel"]["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == healthcheck_command(), probe
    assert container["readinessProbe"]["failureThreshold"] == 1  # out of the endpoints at the drain's start


def test_the_pod_runs_unprivileged(rendered: dict[str, dict[str, Any]]) -> None:
    pod = rendered["Deployment/sentinel"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert rendered["PodDisruptionBudget/sentinel"]["spec"]["maxUnavailable"] == 1
    assert rendered["HorizontalPodAutoscaler/sentinel"]["spec"]["minReplicas"] >= 2
