"""deploy/k8s/: rendered without kustomize (deploy/k8s/render.py), validated offline, checked against the code.

Built-in kinds are validated by kubernetes-validate against the Kubernetes 1.30 schemas in strict
mode (unknown fields fail). The operators' kinds (Strimzi, MongoDB community) have no bundled
schema: a hand-written check of apiVersion, kind and the fields they require stands in for one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.k8s.render import CONFIG_COPY, K8S, REPO, pod_spec, render, strategic_merge
from shared.settings import env_names

KUBERNETES_VERSION = "1.30.0"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
PORTS = {"intake": 8081, "deadline": 8082, "metrics": 8083, "web": 8084}
CONSUMERS = ("deadline", "metrics")  # consumer groups on tthc.case-events
Object = dict[str, Any]

# apiVersion, kind -> dotted paths each object must have (the operators' CRDs, no schema bundled)
CUSTOM_KINDS: dict[tuple[str, str], list[str]] = {
    ("kafka.strimzi.io/v1", "Kafka"): ["spec.kafka.listeners", "spec.entityOperator.topicOperator"],
    ("kafka.strimzi.io/v1", "KafkaNodePool"): [
        "metadata.labels.strimzi.io/cluster",
        "spec.replicas",
        "spec.roles",
        "spec.storage.type",
    ],
    ("kafka.strimzi.io/v1", "KafkaTopic"): ["metadata.labels.strimzi.io/cluster", "spec.partitions", "spec.replicas"],
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"): [
        "spec.type",
        "spec.members",
        "spec.version",
        "spec.security.authentication.modes",
        "spec.users",
    ],
}


@pytest.fixture(scope="module")
def base() -> list[Object]:
    return render(BASE)


@pytest.fixture(scope="module")
def production() -> list[Object]:
    return render(PRODUCTION)


# ---- the checks ------------------------------------------------------------------------------


def lookup(obj: Object, dotted: str) -> Any:
    """A dotted path whose last part may itself hold dots and slashes (a label key)."""
    node: Any = obj
    parts = dotted.split(".")
    while parts:
        for size in range(len(parts), 0, -1):
            key = ".".join(parts[:size])
            if isinstance(node, dict) and key in node:
                node, parts = node[key], parts[size:]
                break
        else:
            return None
    return node


def validation_errors(objects: list[Object]) -> list[str]:
    errors = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        required = CUSTOM_KINDS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if required is not None:
            errors += [f"{name}: no {path}" for path in ["metadata.name", *required] if lookup(obj, path) in (None, "")]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {obj.get('apiVersion')} (and no hand-written check)")
    return errors


def find(objects: list[Object], kind: str, name: str) -> Object:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def container(objects: list[Object], service: str) -> Object:
    spec = pod_spec(find(objects, "Deployment", service))
    assert spec is not None
    return next(c for c in spec["containers"] if c["name"] == service)


def service_problems(objects: list[Object]) -> list[str]:
    """What a service's Deployment lacks: probes on its port, requests and limits, scrape annotations."""
    problems = []
    for service, port in PORTS.items():
        deployment = find(objects, "Deployment", service)
        main = container(objects, service)
        named = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
        if port not in named.values():
            problems.append(f"{service}: does not expose {port}")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = main.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or named.get(get.get("port"), get.get("port")) != port:
                problems.append(f"{service}: {probe} is not GET {path} on {port}")
        for kind in ("requests", "limits"):
            if set(main.get("resources", {}).get(kind, {})) != {"cpu", "memory"}:
                problems.append(f"{service}: no cpu and memory {kind}")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        expected = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}
        if {k: annotations.get(k) for k in expected} != expected:
            problems.append(f"{service}: no Prometheus scrape annotations for {port}")
    return problems


def env_of(objects: list[Object], service: str) -> dict[str, Any]:
    """Every variable the container gets, envFrom ConfigMaps included (a Secret's key as ("secret", name, key))."""
    main = container(objects, service)
    env: dict[str, Any] = {}
    for source in main.get("envFrom", []):
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in main.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = ("secret", ref["name"], ref["key"]) if ref else item["value"]
    return env


# ---- both renderings -------------------------------------------------------------------------


@pytest.mark.parametrize("root", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_object_renders_and_validates(root: Path) -> None:
    objects = render(root)
    assert objects and validation_errors(objects) == []
    assert service_problems(objects) == []


def test_strict_validation_and_the_custom_checks_catch_a_broken_manifest(production: list[Object]) -> None:
    broken = copy.deepcopy(production)
    find(broken, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    del find(broken, "Kafka", "tthc")["spec"]["kafka"]["listeners"]
    del find(broken, "MongoDBCommunity", "mongo")["spec"]["users"]
    broken.append({"apiVersion": "example.org/v1", "kind": "Unknown", "metadata": {"name": "x"}})
    errors = validation_errors(broken)
    assert len(errors) == 4, errors
    assert "imagePullPolcy" in errors[0] and "spec.kafka.listeners" in errors[1] and "spec.users" in errors[2]


def test_the_checker_catches_a_missing_probe_a_wrong_port_and_missing_limits(base: list[Object]) -> None:
    broken = copy.deepcopy(base)
    del container(broken, "deadline")["readinessProbe"]
    container(broken, "metrics")["livenessProbe"]["httpGet"]["port"] = 8080
    del container(broken, "intake")["resources"]["limits"]
    del find(broken, "Deployment", "web")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"]
    assert service_problems(broken) == [
        "intake: no cpu and memory limits",
        "deadline: readinessProbe is not GET /readyz on 8082",
        "metrics: livenessProbe is not GET /healthz on 8083",
        "web: no Prometheus scrape annotations for 8084",
    ]


@pytest.mark.parametrize("root", [BASE, PRODUCTION], ids=["base", "production"])
def test_services_route_to_the_ports_and_pods_disruption_budgets_cover_them(root: Path) -> None:
    objects = render(root)
    for service, port in PORTS.items():
        svc = find(objects, "Service", service)
        labels = find(objects, "Deployment", service)["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
        assert svc["spec"]["selector"].items() <= labels.items()
        pdb = find(objects, "PodDisruptionBudget", service)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"]["maxUnavailable"] == 1  # never blocks a drain, even at one replica


@pytest.mark.parametrize("root", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_intake_alone_scales_on_cpu(root: Path) -> None:
    objects = render(root)
    autoscalers = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert [a["spec"]["scaleTargetRef"] for a in autoscalers] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "intake"}
    ]
    assert "replicas" not in find(objects, "Deployment", "intake")["spec"]  # the autoscaler owns them
    assert container(objects, "intake")["resources"]["requests"]["cpu"]  # utilization needs a request


def test_network_policies_close_every_pod_and_open_each_port(base: list[Object]) -> None:
    policies = [o for o in base if o["kind"] == "NetworkPolicy"]
    deny = find(policies, "NetworkPolicy", "tthc-default-deny")["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "tthc"}}
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    for service, port in PORTS.items():
        labels = find(base, "Deployment", service)["spec"]["template"]["metadata"]["labels"]

        def selects(policy: Object, labels: dict[str, str] = labels) -> bool:
            selector = policy["spec"]["podSelector"]
            expressions = selector.get("matchExpressions", [])
            return selector.get("matchLabels", {}).items() <= labels.items() and all(
                labels.get(e["key"]) in e["values"] for e in expressions
            )

        ingress_ports = {
            p["port"] for p in policies if selects(p) for r in p["spec"].get("ingress", []) for p in r["ports"]
        }
        assert port in ingress_ports, f"nothing lets traffic into {service}:{port}"
        egress = [r for p in policies if selects(p) for r in p["spec"].get("egress", [])]
        assert any({"protocol": "UDP", "port": 53} in r["ports"] for r in egress), f"{service} cannot resolve names"
        reaches = {p["port"] for r in egress for p in r["ports"]}
        assert ({9092, 27017} <= reaches) == (service != "web"), service


# ---- config, variables and secrets: as docker-compose.yml has them ----------------------------


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_configmap_copy_is_config() -> None:
    assert tree(CONFIG_COPY) == tree(REPO / "config"), (
        "deploy/k8s/base/config/ differs from config/: python -m deploy.k8s.render --sync-config"
    )


def test_the_configmap_holds_all_of_config_mounted_where_compose_points(base: list[Object]) -> None:
    files = {p.relative_to(REPO / "config").as_posix(): p for p in (REPO / "config").rglob("*") if p.is_file()}
    data = next(o for o in base if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("tthc-config-"))[
        "data"
    ]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    for service in PORTS:
        spec = pod_spec(find(base, "Deployment", service))
        assert spec is not None
        volume = next(v for v in spec["volumes"] if v["name"] == "config")["configMap"]
        assert volume["name"] == next(o["metadata"]["name"] for o in base if o.get("data") is data)
        paths = {item["path"]: data[item["key"]] for item in volume["items"]}
        assert paths == {path: file.read_text(encoding="utf-8") for path, file in files.items()}
        mount = next(m for m in container(base, service)["volumeMounts"] if m["name"] == "config")
        assert mount["mountPath"] == env_of(base, service)["TTHC_CONFIG_DIR"]
        assert mount["mountPath"] == compose["intake"]["environment"]["TTHC_CONFIG_DIR"]


def test_commands_and_variables_are_docker_composes(base: list[Object]) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    known = set(env_names())
    for service in PORTS:
        assert container(base, service)["command"] == compose[service]["command"]
        env = env_of(base, service)
        assert set(env) <= known, f"{service} sets variables the code does not read: {set(env) - known}"
        expected = set(compose[service]["environment"])
        if service != "deadline":  # the webhook key goes to the service that signs webhooks, alone
            expected -= {"TTHC_WEBHOOK_SECRET", "TTHC_WEBHOOK_SECRET_FILE"}
        expected.discard("TTHC_WEBHOOK_SECRET")  # the key is in the file, as compose's generated one
        assert expected <= set(env), f"{service} lacks {expected - set(env)}"
        for name, value in compose[service]["environment"].items():
            if name in env and isinstance(env[name], str) and not name.endswith(("_URI", "_TOKEN")):
                assert env[name] == str(value), name
    assert env_of(base, "intake")["TTHC_MONGO_URI"] == ("secret", "tthc-mongo-uri", "connectionString.standard")
    secret = find(base, "Secret", "tthc-mongo-uri")["stringData"]["connectionString.standard"]
    assert secret == compose["intake"]["environment"]["TTHC_MONGO_URI"]


def test_the_webhook_key_is_a_file_of_the_deadline_alone(base: list[Object]) -> None:
    path = env_of(base, "deadline")["TTHC_WEBHOOK_SECRET_FILE"]
    spec = pod_spec(find(base, "Deployment", "deadline"))
    assert spec is not None
    mount = next(m for m in container(base, "deadline")["volumeMounts"] if m["name"] == "webhook-secret")
    volume = next(v for v in spec["volumes"] if v["name"] == "webhook-secret")["secret"]
    assert path == f"{mount['mountPath']}/webhook_secret" and volume["secretName"] == "tthc-secrets"
    assert volume["items"] == [{"key": "webhook_secret", "path": "webhook_secret"}]
    for service in ("intake", "metrics", "web"):
        assert "TTHC_WEBHOOK_SECRET_FILE" not in env_of(base, service)


def test_the_base_secrets_are_empty_placeholders_and_production_applies_none(
    base: list[Object], production: list[Object]
) -> None:
    assert find(base, "Secret", "tthc-secrets")["stringData"] == {"admin_token": "", "webhook_secret": ""}
    assert [o for o in production if o["kind"] == "Secret"] == []


# ---- production ------------------------------------------------------------------------------


def test_production_reads_the_replica_set_and_the_kraft_cluster_it_declares(production: list[Object]) -> None:
    assert {o["metadata"].get("namespace") for o in production} == {"tthc"}
    mongo = find(production, "MongoDBCommunity", "mongo")["spec"]
    assert mongo["type"] == "ReplicaSet" and mongo["members"] >= 3
    writes = {user["connectionStringSecretName"] for user in mongo["users"]}
    kafka = find(production, "Kafka", "tthc")
    pools = [o for o in production if o["kind"] == "KafkaNodePool"]
    assert {role for pool in pools for role in pool["spec"]["roles"]} == {"broker", "controller"}  # KRaft
    assert "zookeeper" not in kafka["spec"]
    plain = next(x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"])
    for service in ("intake", *CONSUMERS):
        env = env_of(production, service)
        assert env["TTHC_MONGO_URI"][0] == "secret" and env["TTHC_MONGO_URI"][1] in writes
        assert env["TTHC_KAFKA_BOOTSTRAP"] == f"tthc-kafka-bootstrap:{plain['port']}"
    topics = {o["metadata"]["name"]: o["spec"] for o in production if o["kind"] == "KafkaTopic"}
    assert set(topics) == {"tthc.case-events", "tthc.case-events.dlq", "tthc.deadline-events", "tthc.registry"}
    assert topics["tthc.registry"]["config"]["cleanup.policy"] == "compact"
    for service in CONSUMERS:  # a member beyond the partitions would stand idle
        assert (
            1 <= find(production, "Deployment", service)["spec"]["replicas"] <= topics["tthc.case-events"]["partitions"]
        )


def test_production_has_more_replicas_bigger_limits_and_a_registry_image(
    base: list[Object], production: list[Object]
) -> None:
    def memory(objects: list[Object], service: str) -> int:
        value = container(objects, service)["resources"]["limits"]["memory"]
        return int(value[:-2]) * {"Mi": 1, "Gi": 1024}[value[-2:]]

    for service in PORTS:
        assert memory(production, service) > memory(base, service)
        image = container(production, service)["image"]
        assert image == "registry.example.vn/tthc/tthc-tracker:0.1.0"
        if service != "intake":
            replicas = [find(objects, "Deployment", service)["spec"]["replicas"] for objects in (base, production)]
            assert replicas[1] > replicas[0], service
    hpa = find(production, "HorizontalPodAutoscaler", "intake")["spec"]
    assert hpa["minReplicas"] > find(base, "HorizontalPodAutoscaler", "intake")["spec"]["minReplicas"]


# ---- the renderer itself ---------------------------------------------------------------------


def test_strategic_merge_merges_named_lists_and_replaces_others() -> None:
    base = {"containers": [{"name": "a", "image": "x", "args": [1, 2]}, {"name": "b"}], "keep": 1, "drop": 2}
    patch = {"containers": [{"name": "a", "args": [3]}, {"name": "c"}], "drop": None}
    assert strategic_merge(base, patch) == {
        "containers": [{"name": "a", "image": "x", "args": [3]}, {"name": "b"}, {"name": "c"}],
        "keep": 1,
    }


def test_generated_names_follow_the_content_and_references_follow_the_names(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "c", "image": "i", "envFrom": [{"configMapRef": {"name": "e"}}]}],
                            "volumes": [{"name": "v", "configMap": {"name": "e"}}],
                        }
                    }
                },
            }
        )
    )

    def rendered(value: str) -> tuple[str, str, str]:
        kustomization = {"resources": ["d.yaml"], "configMapGenerator": [{"name": "e", "literals": [f"K={value}"]}]}
        (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        deployment, config_map = render(tmp_path)
        spec = deployment["spec"]["template"]["spec"]
        return (
            config_map["metadata"]["name"],
            spec["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            spec["volumes"][0]["configMap"]["name"],
        )

    one, two = rendered("1"), rendered("2")
    assert len(set(one)) == 1 and len(set(two)) == 1 and one != two and one[0].startswith("e-")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["d.yaml"], "commonLabels": {"a": "b"}}))
    with pytest.raises(ValueError, match="commonLabels"):
        render(tmp_path)
