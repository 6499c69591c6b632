"""The deployment manifests, checked offline: compose, Dockerfile, Kubernetes, Istio.

Schemas: the compose spec (check-jsonschema's vendored copy; plus `docker-compose config -q` when
Debian's docker-compose is installed), Kubernetes core kinds (kubernetes-validate, strict), Istio
resources against their CRD schemas vendored in istio/schemas/. Then what schemas cannot see:
ports, probes, resources, selectors, subsets, weights, JWT settings and that every OSSA_*
variable a manifest sets is a real Settings field.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gateway_http.envoy_config.canary import load_policy
from ossa_runtime.auth.permissions import PUBLIC, PUBLIC_SERVICE_PREFIXES, RPC_PERMISSIONS
from ossa_runtime.settings import FILE_SUFFIX, PREFIX, SECRET_FIELDS, Settings
from ossa_runtime.topology import GATEWAY, SERVICES

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
ISTIO = ROOT / "istio"
DEFAULTS = Settings()
FIELDS = {f.name for f in fields(Settings)}
# The spec's "Resource Limits" (cpu, memory, disk) by container class.
SPEC_RESOURCES = {
    "gateway": ("1000m", "1Gi", "10Gi"),
    "orchestrator": ("2000m", "2Gi", "20Gi"),
    "worker": ("500m", "512Mi", "5Gi"),
}
RESOURCE_CLASS = {"gateway": "gateway", "orchestrator": "orchestrator", "registry": "worker", "monitoring": "worker"}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml" for d in docs(p)]


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == "Deployment"}


def assert_settings_var(name: str, where: str) -> None:
    assert name.startswith(PREFIX), f"{where}: {name} is not an OSSA_* variable"
    field = name[len(PREFIX) :].lower()
    if field.endswith(FILE_SUFFIX.lower()):
        field = field[: -len(FILE_SUFFIX)]
        assert field in SECRET_FIELDS, f"{where}: {name}: only secrets are read from files"
    assert field in FIELDS, f"{where}: {name} is not a Settings field"


# Compose -----------------------------------------------------------------------------------------


def test_compose_matches_the_compose_spec_schema() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed")
def test_docker_compose_config_accepts_it() -> None:
    proc = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compose_runs_the_spec_topology() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    published = {s: [p.split(":")[0] for p in spec.get("ports", [])] for s, spec in services.items()}
    assert published["postgres"] == ["5433"] and published["redis"] == ["6382"] and published["qdrant"] == ["6335"]
    assert published["prometheus"] == ["9090"] and published["gateway"] == ["3100"]
    assert "4317" in published["jaeger"]
    for info in SERVICES:
        spec = services[info.name]
        assert spec["build"]["target"] == info.name and spec["read_only"] is True
        probe = spec["healthcheck"]["test"]
        port = DEFAULTS.gateway_port if info is GATEWAY else info.port(DEFAULTS)
        assert probe == ["CMD", "python", "-m", "ossa_cli.healthcheck", f"127.0.0.1:{port}"]
        for dep in ("postgres", "redis"):
            assert spec["depends_on"][dep] == {"condition": "service_healthy"}
        for var in spec["environment"]:
            assert_settings_var(var, f"compose {info.name}")
        host = spec["environment"].get(f"{PREFIX}{info.host_field.upper()}")
        assert host in (info.name, None), f"{info.name} is dialled at {host}"
    for name in ("postgres", "redis", "qdrant", "prometheus"):
        assert "healthcheck" in services[name], name
    assert services["orchestrator"]["depends_on"]["registry"] == {"condition": "service_healthy"}
    assert set(compose["secrets"]) == {"db-password", "jwt-secret", "api-key"}


def test_compose_prometheus_scrapes_every_service_metrics_port() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{info.name}:{info.metrics_port(DEFAULTS)}" for info in SERVICES}


# Dockerfile --------------------------------------------------------------------------------------


def test_dockerfile_has_a_small_non_root_target_per_service() -> None:
    text = DOCKERFILE.read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", text, re.MULTILINE | re.DOTALL))
    assert "USER 10001:10001" in stages["base"]
    for info in SERVICES:
        stage = stages[info.name]
        assert str(info.metrics_port(DEFAULTS)) in stage
        port = DEFAULTS.gateway_port if info is GATEWAY else info.port(DEFAULTS)
        assert f'CMD ["ossa", "healthcheck", "127.0.0.1:{port}"]' in stage
        module = "ossa_cli.gateway_container" if info is GATEWAY else info.package
        assert f'CMD ["python", "-m", "{module}"]' in stage
        assert (ROOT / module.replace(".", "/")).with_suffix(".py").exists() or (ROOT / module / "__main__.py").exists()
        assert re.search(rf"^EXPOSE .*\b{port}\b", stage, re.MULTILINE), info.name
    for var in re.findall(r"\b(OSSA_[A-Z_]+)=", text):
        assert_settings_var(var, "Dockerfile")


def test_dockerfile_copies_every_package_the_build_installs() -> None:
    import tomllib

    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = set(re.findall(r"^COPY (\S+) \1$", DOCKERFILE.read_text(), re.MULTILINE))
    missing = {src.split("/")[0] for src in package_dirs.values()} - copied
    assert not missing, f"deploy/docker/Dockerfile does not COPY {sorted(missing)}"


# Kubernetes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_kubernetes_core_kinds_validate_strictly(path: str) -> None:
    for doc in docs(K8S / path):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_kustomizations_list_existing_files() -> None:
    for kustomization in (K8S / "kustomization.yaml", ISTIO / "kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"


def test_every_deployment_probes_its_real_grpc_port_and_has_the_spec_resources() -> None:
    deps = deployments()
    for info in SERVICES:
        names = [f"ossa-{info.name}"] if info is not GATEWAY else ["ossa-gateway-blue", "ossa-gateway-green"]
        for name in names:
            spec = deps[name]["spec"]["template"]["spec"]
            assert spec["terminationGracePeriodSeconds"] > DEFAULTS.shutdown_grace_seconds
            (container,) = spec["containers"]
            ports = {p["containerPort"] for p in container["ports"]}
            assert {info.port(DEFAULTS), info.metrics_port(DEFAULTS)} <= ports, name
            readiness = container["readinessProbe"]["grpc"]["port"]
            liveness = container["livenessProbe"]["grpc"]["port"]
            if info is GATEWAY:
                assert (readiness, liveness) == (DEFAULTS.gateway_port, DEFAULTS.gateway_grpc_port)
                assert DEFAULTS.gateway_port in ports
            else:
                assert readiness == liveness == info.port(DEFAULTS), name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["runAsNonRoot"] is True
            if info.name in RESOURCE_CLASS:
                cpu, memory, disk = SPEC_RESOURCES[RESOURCE_CLASS[info.name]]
                assert container["resources"]["limits"] == {"cpu": cpu, "memory": memory, "ephemeral-storage": disk}
            service = next((d for _, d in k8s_docs() if d["kind"] == "Service" and d["metadata"]["name"] == name), None)
            if service is not None:
                assert info.port(DEFAULTS) in {p["port"] for p in service["spec"]["ports"]}


def test_every_variable_a_manifest_sets_is_a_setting() -> None:
    for path, doc in k8s_docs():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "ossa-config":
            for key in doc["data"]:
                assert_settings_var(key, path.name)
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                for var in container.get("env", []):
                    assert_settings_var(var["name"], path.name)


def test_secret_files_come_from_the_spec_secret() -> None:
    (secret,) = docs(K8S / "secret.example.yaml")
    assert secret["metadata"]["name"] == "ossa-secrets"
    assert {"db-password", "jwt-secret", "api-key"} <= set(secret["stringData"])
    config = next(d for _, d in k8s_docs() if d["metadata"]["name"] == "ossa-config")["data"]
    mounted = {v.rsplit("/", 1)[1] for k, v in config.items() if k.endswith(FILE_SUFFIX)}
    assert mounted <= set(secret["stringData"]), mounted
    for dep in deployments().values():
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "ossa-secrets"


def test_blue_green_pair_is_the_spec_s() -> None:
    deps = deployments()
    blue, green = deps["ossa-gateway-blue"], deps["ossa-gateway-green"]
    assert blue["spec"]["replicas"] == 3
    assert blue["spec"]["selector"]["matchLabels"] == {"app": "ossa-gateway", "version": "blue"}
    (container,) = blue["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("gateway", "ossa/gateway:0.1.9")
    assert container["ports"][0]["containerPort"] == 3100
    swapped = json.loads(json.dumps(green).replace("green", "blue"))
    assert swapped == blue, "blue and green differ in more than their colour"
    (service,) = docs(K8S / "gateway-service.yaml")
    assert service["spec"]["selector"] == {"app": "ossa-gateway", "version": "blue"}
    assert service["spec"]["ports"][0]["port"] == service["spec"]["ports"][0]["targetPort"] == 3100
    for dep, colour in ((blue, "blue"), (green, "green")):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        flipped = {**service["spec"]["selector"], "version": colour}
        assert flipped.items() <= labels.items(), f"switching the selector to {colour} selects no pod"


# Istio -------------------------------------------------------------------------------------------


def istio_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(ISTIO.glob("*.yaml")) if p.name != "kustomization.yaml" for d in docs(p)]


def schema_for(doc: dict[str, Any]) -> dict[str, Any]:
    group, version = doc["apiVersion"].split("/")
    path = ISTIO / "schemas" / f"{doc['kind'].lower()}-{group.split('.')[0]}-{version}.json"
    assert path.exists(), f"no vendored schema for {doc['apiVersion']} {doc['kind']}"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def test_istio_resources_validate_against_the_vendored_crd_schemas() -> None:
    kinds = set()
    for _path, doc in istio_docs():
        jsonschema.Draft7Validator(schema_for(doc)).validate(doc)
        kinds.add(doc["kind"])
    expected = {"VirtualService", "DestinationRule", "PeerAuthentication", "RequestAuthentication"}
    assert kinds == expected | {"AuthorizationPolicy"}


def test_the_crd_schemas_do_reject_bad_resources() -> None:
    (vs,) = docs(ISTIO / "virtual-service.yaml")
    vs["spec"]["http"][1]["route"][0]["weight"] = "ninety"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema_for(vs)).validate(vs)
    (pa,) = docs(ISTIO / "peer-authentication.yaml")
    pa["spec"]["mtls"]["mode"] = "SOMETIMES"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema_for(pa)).validate(pa)


def test_canary_rules_are_the_spec_s_and_their_subsets_select_the_gateway_pods() -> None:
    policy = load_policy(ISTIO)  # weights add up to 100, every subset exists (or it raises)
    first, default = policy.rules
    assert first.headers == (("canary", "exact", "true"),)
    assert [(d.subset, d.weight) for d in first.destinations] == [("v2", 100)]
    assert default.headers == ()
    assert [(d.subset, d.weight) for d in default.destinations] == [("v1", 90), ("v2", 10)]
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in deployments().values()]
    for subset, labels in policy.subsets.items():
        matching = [p for p in pods if p.get("app") == "ossa-gateway" and labels.items() <= p.items()]
        assert len(matching) == 1, f"subset {subset} selects {len(matching)} gateway Deployments"


def test_istio_overlay_lets_the_service_select_both_colours() -> None:
    kustomization = yaml.safe_load((ISTIO / "kustomization.yaml").read_text())
    (patch,) = kustomization["patches"]
    assert patch["target"] == {"kind": "Service", "name": "ossa-gateway"}
    assert yaml.safe_load(patch["patch"]) == [{"op": "remove", "path": "/spec/selector/version"}]


def test_mtls_is_strict() -> None:
    (pa,) = docs(ISTIO / "peer-authentication.yaml")
    assert pa["spec"]["mtls"]["mode"] == "STRICT" and "selector" not in pa["spec"]


def test_edge_jwt_rules_match_the_services_checks() -> None:
    (ra,) = docs(ISTIO / "request-authentication.yaml")
    (rule,) = ra["spec"]["jwtRules"]
    config = {d["metadata"]["name"]: d["data"] for _, d in k8s_docs() if d["kind"] == "ConfigMap"}
    settings = config["ossa-config"]
    assert rule["issuer"] == settings["OSSA_JWT_ISSUER"] == DEFAULTS.jwt_issuer
    assert rule["audiences"] == [settings["OSSA_JWT_AUDIENCE"]] == [DEFAULTS.jwt_audience]
    assert json.loads(rule["jwks"]) == json.loads(config["ossa-jwks"]["jwks.json"])
    kids = {k["kid"] for k in json.loads(rule["jwks"])["keys"]}
    assert settings["OSSA_JWT_KEY_ID"] in kids and settings["OSSA_JWT_ALGORITHMS"] == "RS256"
    assert rule["forwardOriginalToken"] is True


def _http_paths() -> dict[str, str]:
    """gRPC method path -> its REST path (google.api.http), from the descriptor."""
    from google.api import annotations_pb2  # type: ignore[import-untyped]
    from google.protobuf import descriptor_pb2

    from gateway_http.envoy_config.descriptor import descriptor_bytes

    out = {}
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptor_bytes()).file:
        for service in file.service:
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                path = rule.get or rule.post or rule.put or rule.delete or rule.patch
                if path:
                    out[f"/{file.package}.{service.name}/{method.name}"] = path
    return out


def test_edge_authorization_leaves_public_exactly_what_the_services_do() -> None:
    policies = {d["metadata"]["name"]: d for _, d in istio_docs() if d["kind"] == "AuthorizationPolicy"}
    edge = policies["ossa-gateway"]["spec"]
    assert edge["action"] == "ALLOW"
    with_token, public = edge["rules"]
    assert with_token == {"from": [{"source": {"requestPrincipals": [f"{DEFAULTS.jwt_issuer}/*"]}}]}
    allowed = set(public["to"][0]["operation"]["paths"])
    methods = {m for m, perm in RPC_PERMISSIONS.items() if perm == PUBLIC}
    rest = {_http_paths()[m] for m in methods}
    prefixes = {p + "*" for p in PUBLIC_SERVICE_PREFIXES}  # Istio paths: a trailing * is a prefix match
    assert allowed == methods | rest | prefixes | {"/api/v1/openapi.json"}
    internal = policies["ossa-internal"]["spec"]
    backends = {
        d["metadata"]["name"]
        for d in deployments().values()
        if d["spec"]["template"]["metadata"]["labels"].get("tier") == "backend"
    }
    assert backends == {f"ossa-{s.name}" for s in SERVICES if s is not GATEWAY}
    assert internal["selector"]["matchLabels"] == {"tier": "backend"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    shutil.copy(ROOT / "deploy" / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    proc = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
