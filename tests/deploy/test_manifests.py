"""The k8s/ manifests, rendered with kustomize and checked without a cluster.

Schemas first (built-in kinds against Kubernetes 1.30 in strict mode, custom kinds against
their CRDs), then what schemas cannot see: selectors against labels, probes against the app's
routes, ports against each other, the variables against what `service/config.py` reads, the
connection budget against the database's limits, and checkov's security policies.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service import cli
from service.app import create_app
from service.config import Settings
from service.related.worker import POOL_SIZE
from tests.deploy import tools
from tests.deploy.conftest import K8S, RENDERS, ROOT, Image

Doc = dict[str, Any]
Renders = dict[str, list[Doc]]

KUBERNETES_VERSION = "1.30.0"
CRDS = ROOT.parent / "shared" / "k8s-crds"
# Kinds that come from operators; everything else must be a built-in kind of 1.30.
CUSTOM_GROUPS = {"postgresql.cnpg.io", "monitoring.coreos.com"}
# libpq's variables that asyncpg (and alembic through it) reads when the URL leaves them out:
# the cnpg component passes the database password this way, not inside DATABASE_URL, and
# production asks for TLS with PGSSLMODE.
LIBPQ_VARIABLES = {"PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT"}
# Connections a PostgreSQL must keep for others than the app: superuser_reserved_connections
# (3 by default), and the operator's instance manager, metrics and an operator's psql.
SUPERUSER_RESERVED = 3
ADMIN_RESERVE = 10
MIGRATION_CONNECTIONS = 1  # `newsgraph migrate` runs on one connection
INDEXER_CONNECTIONS = POOL_SIZE + 1  # `newsgraph index`: its pool and the indexer's own
SECRET = "newsgraph-secrets"  # made by the operator, never by the manifests


@pytest.fixture(params=list(RENDERS))
def name(request: pytest.FixtureRequest) -> str:
    """Which rendered combination a test looks at."""
    value: str = request.param
    return value


def _group(doc: Doc) -> str:
    api_version: str = doc["apiVersion"]
    return api_version.split("/")[0] if "/" in api_version else ""


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _all(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _pod_templates(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield doc, doc["spec"]["template"]


def _containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for owner, template in _pod_templates(docs):
        spec = template["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield owner, container


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    assert "matchExpressions" not in selector, "teach this test matchExpressions"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _api(docs: list[Doc]) -> Doc:
    return _one(docs, "Deployment", "newsgraph")


def _indexer(docs: list[Doc]) -> Doc:
    return _one(docs, "Deployment", "newsgraph-indexer")


def _container(workload: Doc) -> Doc:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    result: Doc = container
    return result


def _config(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The environment a container gets from its ConfigMaps and literal values."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "Secrets by key only (secretKeyRef)"
        env.update(_one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


def _env_names(docs: list[Doc], container: Doc) -> set[str]:
    names = {var["name"] for var in container.get("env", [])}
    return names | set(_config(docs, container))


def _host_of(container: Doc, name: str) -> str | None:
    """The host of a database URL written into the manifests (not from a Secret)."""
    [url] = [v["value"] for v in container.get("env", []) if v["name"] == name]
    return urlsplit(str(url)).hostname


# --- schemas -------------------------------------------------------------------------------


def test_builtin_kinds_are_valid_for_kubernetes_1_30_in_strict_mode(
    name: str, rendered: Renders
) -> None:
    errors = []
    for doc in rendered[name]:
        if _group(doc) in CUSTOM_GROUPS:
            continue
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{label}: no schema in Kubernetes 1.30 ({exc})")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{label}: {exc.message} at {'.'.join(map(str, exc.path))}")
    assert errors == []


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as the API server's pruning would drop them."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _crd_schemas() -> dict[tuple[str, str, str], Any]:
    schemas = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served") and "schema" in version:
                    key = (spec["group"], version["name"], spec["names"]["kind"])
                    schemas[key] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def test_custom_kinds_are_valid_for_their_crds(name: str, rendered: Renders) -> None:
    if not CRDS.is_dir():
        pytest.skip(f"no CRD schemas at {CRDS} (../shared/k8s-crds is not in a fresh clone)")
    schemas = _crd_schemas()
    errors = []
    for doc in rendered[name]:
        if _group(doc) not in CUSTOM_GROUPS:
            continue
        group, version = doc["apiVersion"].split("/")
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        schema = schemas.get((group, version, doc["kind"]))
        if schema is None:
            errors.append(f"{label}: no CRD schema for {doc['apiVersion']} {doc['kind']}")
            continue
        body = copy.deepcopy(doc)
        body["metadata"] = {}  # ObjectMeta is the API server's, not the CRD's, to check
        for error in jsonschema.Draft4Validator(schema).iter_errors(body):
            errors.append(f"{label}: {error.message} at {'.'.join(map(str, error.path))}")
    assert errors == []


def test_every_namespaced_object_lands_in_the_overlays_namespace(
    name: str, rendered: Renders
) -> None:
    docs = rendered[name]
    [namespace] = [d["metadata"]["name"] for d in _all(docs, "Namespace")]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]


# --- what schemas miss ---------------------------------------------------------------------


def test_selectors_match_the_pod_labels(name: str, rendered: Renders) -> None:
    docs = rendered[name]
    api = _api(docs)
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert _matches(api["spec"]["selector"], pod_labels)
    for constraint in api["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert _matches(constraint["labelSelector"], pod_labels)
    service = _one(docs, "Service", "newsgraph")
    assert _matches({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert _matches(_one(docs, "PodDisruptionBudget")["spec"]["selector"], pod_labels)
    hpa = _one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        api["metadata"]["name"],
    )
    monitor = _one(docs, "ServiceMonitor")
    assert _matches(monitor["spec"]["selector"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    # Every NetworkPolicy applies to some pod, and every pod has one.
    templates = [t["metadata"]["labels"] for _, t in _pod_templates(docs)]
    policies = [p["spec"]["podSelector"] for p in _all(docs, "NetworkPolicy")]
    for policy in policies:
        assert any(_matches(policy, labels) for labels in templates), policy
    for labels in templates:
        assert any(_matches(policy, labels) for policy in policies), labels
    # The migration Job's and the indexer's pods are not behind the Service, not counted by
    # the PDB; the indexer's are scraped by the PodMonitor on their metrics port.
    job_labels = _one(docs, "Job", "newsgraph-migrate")["spec"]["template"]["metadata"]["labels"]
    indexer = _indexer(docs)
    indexer_labels = indexer["spec"]["template"]["metadata"]["labels"]
    assert _matches(indexer["spec"]["selector"], indexer_labels)
    assert not _matches(indexer["spec"]["selector"], pod_labels)
    assert not _matches(api["spec"]["selector"], indexer_labels)
    for labels in (job_labels, indexer_labels):
        assert not _matches({"matchLabels": service["spec"]["selector"]}, labels)
        assert not _matches(_one(docs, "PodDisruptionBudget")["spec"]["selector"], labels)
    pod_monitor = _one(docs, "PodMonitor")
    assert _matches(pod_monitor["spec"]["selector"], indexer_labels)
    assert not _matches(pod_monitor["spec"]["selector"], pod_labels)
    [endpoint] = pod_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in _container(indexer)["ports"]}


def test_probes_hit_routes_of_the_app(name: str, rendered: Renders) -> None:
    app = create_app(Settings.from_environ({"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}))
    routes = {getattr(route, "path", None) for route in app.routes}
    container = _container(_api(rendered[name]))
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths["livenessProbe"] == "/healthz"
    assert paths["readinessProbe"] == "/readyz"
    assert set(paths.values()) <= routes


def test_the_service_monitor_scrapes_metrics_on_the_http_port(name: str, rendered: Renders) -> None:
    [endpoint] = _one(rendered[name], "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    app = create_app(Settings.from_environ({"DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}))
    if "/metrics" not in {getattr(route, "path", None) for route in app.routes}:
        pytest.skip("the app has no /metrics route yet (DESIGN: GET /metrics arrives later)")


def test_probe_port_is_the_container_port_and_the_service_target(
    name: str, rendered: Renders, image: Image
) -> None:
    docs = rendered[name]
    container = _container(_api(docs))
    [port] = container["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    [service_port] = _one(docs, "Service", "newsgraph")["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    # The process listens where the container port says: NEWSGRAPH_PORT, else the image's.
    listens = _config(docs, container).get("NEWSGRAPH_PORT", image.env.get("NEWSGRAPH_PORT"))
    assert listens == str(port["containerPort"])
    assert port["containerPort"] in image.exposed
    policy = _one(docs, "NetworkPolicy", "newsgraph-api")
    [rule] = policy["spec"]["ingress"]
    assert {p["port"] for p in rule["ports"]} <= {port["name"], port["containerPort"]}


def test_the_job_migrates_with_the_deployments_image(name: str, rendered: Renders) -> None:
    docs = rendered[name]
    api = _container(_api(docs))
    job = _one(docs, "Job", "newsgraph-migrate")
    migrate = _container(job)
    assert migrate["image"] == api["image"]
    # The image's ENTRYPOINT is `newsgraph`: the Job replaces only its arguments.
    assert "command" not in migrate
    assert migrate["args"] == ["migrate"]
    # The API runs the image's own CMD (`serve --host 0.0.0.0`).
    assert "command" not in api
    assert "args" not in api
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert migrate["envFrom"] == api["envFrom"]  # the same settings


def test_one_indexer_pod_indexes_and_refreshes_instead_of_the_api_pods(
    name: str, rendered: Renders
) -> None:
    docs = rendered[name]
    api = _container(_api(docs))
    indexer = _indexer(docs)
    container = _container(indexer)
    assert container["image"] == api["image"]
    assert "command" not in container
    args = cli.build_parser().parse_args(container["args"])
    assert args.command == "index"
    [port] = container["ports"]
    assert args.metrics_port == port["containerPort"]
    assert container["livenessProbe"]["httpGet"]["port"] in (port["name"], port["containerPort"])
    # The API pods leave indexing and refreshing to it.
    api_settings = Settings.from_environ(_config(docs, api))
    assert api_settings.related_indexer == "off"
    assert api_settings.related_refresh_percent == 0
    settings = Settings.from_environ(_config(docs, container))
    assert settings.host == "0.0.0.0"  # noqa: S104 - its metrics port, on the pod's address
    assert settings.related_refresh_percent > 0
    assert indexer["spec"]["replicas"] == 1
    policy = _one(docs, "NetworkPolicy", "newsgraph-indexer")
    [rule] = policy["spec"]["ingress"]
    assert {p["port"] for p in rule["ports"]} <= {port["name"], port["containerPort"]}


def test_no_image_floats_on_latest(name: str, rendered: Renders) -> None:
    images = [c["image"] for _, c in _containers(rendered[name])]
    images += [d["spec"]["imageName"] for d in _all(rendered[name], "Cluster")]
    images += [
        d["spec"]["pgbouncer"]["image"]
        for d in _all(rendered[name], "Pooler")
        if "image" in d["spec"]["pgbouncer"]
    ]
    for ref in images:
        if "@sha256:" in ref:
            continue
        last = ref.rsplit("/", 1)[-1]
        assert ":" in last, f"{ref} has no tag"
        assert last.rsplit(":", 1)[1] != "latest", ref


class _Recorder(dict[str, str]):
    """An environment that notes every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def _settings_read(env: dict[str, str]) -> set[str]:
    """The variables `Settings.from_environ` reads: the known settings (README table)."""
    recorder = _Recorder(env)
    Settings.from_environ(recorder)  # raises ConfigError naming a bad value
    return recorder.read


def test_every_variable_set_is_a_known_setting_with_a_usable_value(
    name: str, rendered: Renders, image: Image
) -> None:
    for owner, container in _containers(rendered[name]):
        for var in container.get("env", []):
            assert ("value" in var) != ("valueFrom" in var), var["name"]
        names = _env_names(rendered[name], container)
        env = dict(image.env) | _config(rendered[name], container)
        # What Secrets will hold: a URL for the URLs, a long string for the rest.
        env |= {n: "postgresql://x@127.0.0.1:1/x" for n in names if n.startswith("DATABASE_")}
        env |= {n: "s" * 48 for n in names if n not in env}
        known = _settings_read(env)
        assert "DATABASE_URL" in known
        unknown = names - known - LIBPQ_VARIABLES
        assert unknown == set(), f"{owner['kind']} sets variables Newsgraph does not read"


def test_database_urls_carry_no_secrets_in_the_manifests(name: str, rendered: Renders) -> None:
    docs = rendered[name]
    if name == "production":
        assert _all(docs, "Secret") == [], "production Secrets are made outside the manifests"
    for _, container in _containers(docs):
        for var in container.get("env", []):
            if "value" in var and var["name"].startswith("DATABASE_"):
                assert urlsplit(var["value"]).password is None, var["name"]
            if var["name"] == "PGPASSWORD":
                assert "secretKeyRef" in var["valueFrom"]


def test_shutdown_fits_in_the_grace_period(name: str, rendered: Renders) -> None:
    spec = _api(rendered[name])["spec"]["template"]["spec"]
    pre_stop = _container(_api(rendered[name]))["lifecycle"]["preStop"]["sleep"]["seconds"]
    match = re.search(r"timeout_graceful_shutdown=(\d+)", inspect.getsource(cli))
    assert match, "newsgraph serve no longer sets uvicorn's timeout_graceful_shutdown"
    pool_close = 10  # open_database: wait_for(pool.close(), timeout=10), then terminate
    needed = pre_stop + int(match.group(1)) + pool_close
    assert spec["terminationGracePeriodSeconds"] > needed


def test_pods_meet_the_restricted_pod_security_standard(name: str, rendered: Renders) -> None:
    for owner, template in _pod_templates(rendered[name]):
        spec = template["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, owner["kind"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "add" not in context["capabilities"]
            # A read-only root: /tmp (HOME and XDG dirs in the image) is an emptyDir.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108
            assert {"requests", "limits"} <= set(container["resources"])
    namespace = _one(rendered[name], "Namespace")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


def test_replicas_and_autoscaling_bounds(name: str, rendered: Renders) -> None:
    docs = rendered[name]
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    replicas = _api(docs)["spec"]["replicas"]
    assert 1 <= hpa["minReplicas"] <= replicas <= hpa["maxReplicas"]
    [metric] = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    if name.startswith("production"):
        assert hpa["minReplicas"] >= 3
    if name == "dev":
        assert replicas == 1
    # Eviction of one pod at a time, never all: works for one replica and for many.
    assert _one(docs, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": _one(docs, "PodDisruptionBudget")["spec"]["selector"],
    }


# --- the database: poolers, replicas, connections ------------------------------------------


def test_cloudnativepg_objects_fit_together(name: str, rendered: Renders) -> None:
    docs = rendered[name]
    clusters = _all(docs, "Cluster")
    if not clusters:
        # An external PostgreSQL: every URL comes from the Secret, none is written here.
        for _, container in _containers(docs):
            urls = [v for v in container["env"] if v["name"].startswith("DATABASE_")]
            assert urls
            assert all(v["valueFrom"]["secretKeyRef"]["name"] == SECRET for v in urls)
        return
    [cluster] = clusters
    spec = cluster["spec"]
    assert not ("imageName" in spec and "imageCatalogRef" in spec)
    sync = spec["postgresql"].get("synchronous")
    if spec["instances"] > 1:
        assert sync is not None, "more than one instance: replicate synchronously"
        assert 0 < sync["number"] < spec["instances"]
    if name == "production+cnpg":
        assert spec["instances"] == 3
    poolers = {p["metadata"]["name"]: p["spec"] for p in _all(docs, "Pooler")}
    assert sorted(p["type"] for p in poolers.values()) in (["ro", "rw"], ["r", "rw"])
    for pooler_name, pooler in poolers.items():
        assert pooler_name != cluster["metadata"]["name"]
        assert pooler["cluster"]["name"] == cluster["metadata"]["name"]
        assert pooler["pgbouncer"]["poolMode"] == "transaction"
    # The app through the poolers, with prepared statements off; the Job to the primary.
    api = _container(_api(docs))
    by_type = {p["type"]: n for n, p in poolers.items()}
    assert _host_of(api, "DATABASE_URL") == by_type["rw"]
    assert _host_of(api, "DATABASE_REPLICA_URL") == by_type.get("ro", by_type.get("r"))
    assert _config(docs, api)["NEWSGRAPH_STATEMENT_CACHE_SIZE"] == "0"
    # The Job and the indexer (LISTEN, a transaction per batch) to the primary itself.
    for workload in (_one(docs, "Job", "newsgraph-migrate"), _indexer(docs)):
        assert _host_of(_container(workload), "DATABASE_URL") == f"{cluster['metadata']['name']}-rw"


def _max_pods(docs: list[Doc]) -> int:
    """The most API pods at once: the HPA's ceiling plus a rolling update's surge."""
    deployment = _api(docs)["spec"]
    ceiling: int = _one(docs, "HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    surge = deployment["strategy"]["rollingUpdate"]["maxSurge"]
    if isinstance(surge, str):
        surge = math.ceil(ceiling * int(surge.rstrip("%")) / 100)
    return ceiling + int(surge)


def test_connections_fit_the_databases_limits(name: str, rendered: Renders) -> None:
    docs = rendered[name]
    api = _container(_api(docs))
    config = _config(docs, api)
    pool = int(config.get("NEWSGRAPH_POOL_MAX_SIZE", Settings().pool_max_size))
    per_pod = int(config.get("NEWSGRAPH_WORKERS", "1")) * pool  # per pool, primary or replica
    pods = _max_pods(docs)
    # The indexer pods, a rollout's surge included, straight to the primary.
    indexer = _indexer(docs)["spec"]
    indexers = indexer["replicas"] + int(indexer["strategy"]["rollingUpdate"]["maxSurge"])
    direct = MIGRATION_CONNECTIONS + indexers * INDEXER_CONNECTIONS
    clusters = _all(docs, "Cluster")
    if not clusters:
        # An external database: the overlay records the limits it was sized for.
        notes = _one(docs, "HorizontalPodAutoscaler")["metadata"]["annotations"]
        limit = int(notes["newsgraph/database-max-connections"])
        reserved = int(notes["newsgraph/database-reserved-connections"])
        assert pods * per_pod + direct + reserved <= limit
        return
    [cluster] = clusters
    limit = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    usable = limit - SUPERUSER_RESERVED - ADMIN_RESERVE
    on_primary = direct
    on_a_standby = 0
    for pooler in _all(docs, "Pooler"):
        spec = pooler["spec"]
        params = spec["pgbouncer"]["parameters"]
        # Clients: every pod's pool may land on one PgBouncer instance.
        assert pods * per_pod <= int(params["max_client_conn"]), pooler["metadata"]["name"]
        servers = spec["instances"] * (
            int(params["default_pool_size"]) + int(params.get("reserve_pool_size", "0"))
        )
        if spec["type"] in {"rw", "r"}:
            on_primary += servers
        if spec["type"] in {"ro", "r"}:
            on_a_standby += servers  # worst case: all on one standby
    assert on_primary <= usable, f"primary: {on_primary} > {usable}"
    assert on_a_standby <= usable, f"standby: {on_a_standby} > {usable}"


# --- security policy -----------------------------------------------------------------------


def test_checkov_finds_nothing_unjustified(rendered: Renders, tmp_path: Path) -> None:
    skips = 0
    for docs in rendered.values():
        for doc in docs:
            for key, value in doc["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert re.fullmatch(r"CKV2?_K8S_\d+", check), value
                    assert len(reason) > 30, f"justify skipping {check}"
                    assert "=" not in reason, "checkov splits the annotation at '='"
                    skips += 1
    for name, docs in rendered.items():
        (tmp_path / f"{name.replace('+', '-')}.yaml").write_text(
            yaml.safe_dump_all(docs), encoding="utf-8"
        )
    # One run over every render (checkov takes seconds to start); --skip-download: nothing
    # goes to the vendor's platform, checks and results stay local.
    result = subprocess.run(
        [
            str(tools.checkov()),
            "--framework",
            "kubernetes",
            "--directory",
            str(tmp_path),
            "--output",
            "json",
            "--quiet",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    failed = [
        f"{c['check_id']} {c['resource']} in {Path(c['file_path']).name}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    # Every justified skip still applies to something (a stale one would be dropped).
    assert summary["skipped"] == skips


def test_every_overlay_is_tested() -> None:
    overlays = {p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml")}
    assert overlays == {path.split("/")[1] for path, _ in RENDERS.values()}
