"""The twin's Kubernetes API driven by real clients: kubectl (subprocess) and the official python
client (CoreV1Api, AppsV1Api, CustomObjectsApi, DynamicClient), over HTTPS with the twin's token."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from importlib import resources
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import dynamic, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.timeout(120)

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.twin.io"},
    "spec": {
        "group": "test.twin.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "color": {"type": "string"},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def _wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def namespace(kube_client: Any) -> Any:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(kube_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


@pytest.fixture(scope="module")
def widgets(kube_client: Any) -> str:
    """The Widget CRD (status subresource, printer columns, schema) registered once."""
    api = k8s.ApiextensionsV1Api(kube_client)
    try:
        api.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    return "widgets.test.twin.io"


# ---- authentication and discovery ------------------------------------------------------------


def test_anonymous_and_wrong_token_get_401_status(twin: Any) -> None:
    url = twin.endpoints["kubernetes"]
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        response = httpx.get(
            f"{url}/api/v1/namespaces",
            headers=headers,
            verify=ssl.create_default_context(cafile=str(twin.ca_cert)),
        )
        assert response.status_code == 401
        assert response.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    # As on a cluster with anonymous auth: health and version are public.
    assert (
        httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=str(twin.ca_cert))).text == "ok"
    )
    assert (
        httpx.get(f"{url}/version", verify=ssl.create_default_context(cafile=str(twin.ca_cert)))
        .json()["gitVersion"]
        .endswith("-gke.twin")
    )


def test_kubectl_version_and_api_resources_list_builtin_and_custom_kinds(kubectl: Any, widgets: str) -> None:
    version = kubectl("version", "-o", "json")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["serverVersion"]["minor"] == "31"
    crd_path = resources.files("rhaii_nb") / "data/schemas/kserve/serving.kserve.io_llminferenceservices.yaml"
    with resources.as_file(crd_path) as path:
        applied = kubectl("apply", "--server-side", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    listed = kubectl("api-resources")
    assert listed.returncode == 0, listed.stderr
    rows = {(line.split()[0], line.split()[-1]) for line in listed.stdout.splitlines()[1:]}
    assert ("llminferenceservices", "LLMInferenceService") in rows
    assert ("widgets", "Widget") in rows
    assert ("deployments", "Deployment") in rows
    assert "serving.kserve.io/v1alpha1" in listed.stdout


def test_dynamic_client_discovers_core_apps_and_custom_types(kube_client: Any, widgets: str) -> None:
    client = dynamic.DynamicClient(kube_client)
    pods = client.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced and "log" in [s for s in pods.subresources]
    deployments = client.resources.get(api_version="apps/v1", kind="Deployment")
    assert "scale" in deployments.subresources
    widget = client.resources.get(api_version="test.twin.io/v1", kind="Widget")
    assert widget.name == "widgets" and widget.short_names == ["wdg"]


# ---- kubectl verbs ---------------------------------------------------------------------------


def test_kubectl_namespace_secret_get_describe_jsonpath(kubectl: Any) -> None:
    name = f"k-{uuid.uuid4().hex[:8]}"
    assert kubectl("create", "namespace", name).returncode == 0
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf-token", "namespace": name},
        "type": "Opaque",
        "data": {"token": "c2VjcmV0"},
    }
    first = kubectl("apply", "-f", "-", input=yaml.safe_dump(secret))
    assert first.returncode == 0 and "secret/hf-token created" in first.stdout, first.stderr
    again = kubectl("apply", "-f", "-", input=yaml.safe_dump(secret))
    assert "secret/hf-token unchanged" in again.stdout, again.stderr
    table = kubectl("get", "secret", "hf-token", "-n", name)
    assert table.stdout.split("\n")[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table.stdout.split("\n")[1].split()[:3] == ["hf-token", "Opaque", "1"]
    jsonpath = kubectl("get", "secret", "hf-token", "-n", name, "-o", "jsonpath={.data.token}")
    assert jsonpath.stdout == "c2VjcmV0"
    described = kubectl("describe", "secret", "hf-token", "-n", name)
    assert described.returncode == 0, described.stderr
    assert "token:  6 bytes" in described.stdout and "c2VjcmV0" not in described.stdout


def test_server_side_apply_twice_is_a_no_op_and_other_manager_conflicts(
    kubectl: Any, kube_client: Any, namespace: str
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": namespace}}
    config["data"] = {"model": "qwen"}
    manifest = yaml.safe_dump(config)
    assert (
        kubectl("apply", "--server-side", "--field-manager=runbook", "-f", "-", input=manifest).returncode
        == 0
    )
    core = k8s.CoreV1Api(kube_client)
    rv = core.read_namespaced_config_map("cfg", namespace).metadata.resource_version
    second = kubectl("apply", "--server-side", "--field-manager=runbook", "-f", "-", input=manifest)
    assert second.returncode == 0 and "serverside-applied" in second.stdout
    assert core.read_namespaced_config_map("cfg", namespace).metadata.resource_version == rv

    config["data"] = {"model": "llama"}
    conflicting = kubectl(
        "apply", "--server-side", "--field-manager=intruder", "-f", "-", input=yaml.safe_dump(config)
    )
    assert conflicting.returncode == 1
    assert 'conflict with "runbook"' in conflicting.stderr and ".data.model" in conflicting.stderr

    resource = dynamic.DynamicClient(kube_client).resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(ApiException) as raised:
        resource.server_side_apply(body=config, name="cfg", namespace=namespace, field_manager="intruder")
    assert raised.value.status == 409
    assert json.loads(raised.value.body)["reason"] == "Conflict"
    forced = resource.server_side_apply(
        body=config, name="cfg", namespace=namespace, field_manager="intruder", force_conflicts=True
    )
    assert forced.data.model == "llama"


def test_kubectl_patch_strategic_merge_and_label(kubectl: Any, kube_client: Any, namespace: str) -> None:
    apps = k8s.AppsV1Api(kube_client)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "main", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]
                },
            },
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)
    strategic = kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "-p",
        json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}}),
    )
    assert strategic.returncode == 0, strategic.stderr
    containers = apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("main", "nginx:2"), ("side", "busybox")]

    merge = kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"replicas":0,"template":{"metadata":{"annotations":{"rev":"2"}}}}}',
    )
    assert merge.returncode == 0, merge.stderr
    current = apps.read_namespaced_deployment("web", namespace)
    assert current.spec.template.metadata.annotations == {"rev": "2"}
    assert current.metadata.generation == 3

    assert kubectl("label", "deployment", "web", "-n", namespace, "tier=frontend").returncode == 0
    selected = apps.list_namespaced_deployment(namespace, label_selector="tier in (frontend,backend)")
    assert [d.metadata.name for d in selected.items] == ["web"]
    scaled = kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=0")
    assert scaled.returncode == 0, scaled.stderr
    assert apps.read_namespaced_deployment_scale("web", namespace).spec.replicas == 0


def test_kubectl_wait_for_jsonpath_and_condition_set_by_another_client(
    kubectl: Any, kube_client: Any, widgets: str, namespace: str
) -> None:
    custom = k8s.CustomObjectsApi(kube_client)
    body = {
        "apiVersion": "test.twin.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 2},
    }
    custom.create_namespaced_custom_object("test.twin.io", "v1", namespace, "widgets", body)
    on_condition = kubectl.popen(
        "wait", "-n", namespace, "--for=condition=Ready", "widget/w1", "--timeout=60s"
    )
    on_jsonpath = kubectl.popen(
        "wait", "-n", namespace, "--for=jsonpath={.spec.size}=5", "widget/w1", "--timeout=60s"
    )
    try:
        time.sleep(0.5)
        assert on_condition.poll() is None and on_jsonpath.poll() is None
        custom.patch_namespaced_custom_object(
            "test.twin.io", "v1", namespace, "widgets", "w1", {"spec": {"size": 5}}
        )
        status = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}}
        custom.patch_namespaced_custom_object_status("test.twin.io", "v1", namespace, "widgets", "w1", status)
        assert on_condition.wait(timeout=30) == 0, on_condition.stderr.read()
        assert on_jsonpath.wait(timeout=30) == 0, on_jsonpath.stderr.read()
        assert "widget.test.twin.io/w1 condition met" in on_condition.stdout.read()
    finally:
        for process in (on_condition, on_jsonpath):
            process.kill()
            process.wait()
    table = kubectl("get", "widgets", "-n", namespace)
    assert table.stdout.splitlines()[0].split() == ["NAME", "READY", "SIZE"]
    assert table.stdout.splitlines()[1].split() == ["w1", "True", "5"]


def test_kubectl_get_watch_receives_changes_made_by_another_client(
    kubectl: Any, kube_client: Any, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}, "data": {"a": "1"}})
    watcher = kubectl.popen("get", "configmaps", "-n", namespace, "-w", "--output-watch-events")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        _wait_until(lambda: any("before" in line for line in lines), 30, "the initial list in kubectl get -w")
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "made-later"}, "data": {"b": "2"}})
        core.delete_namespaced_config_map("made-later", namespace)
        _wait_until(
            lambda: any(line.split()[:2] == ["DELETED", "made-later"] for line in lines),
            30,
            "the DELETED event",
        )
    finally:
        watcher.kill()
        watcher.wait()
    events = [line.split()[:2] for line in lines if line.strip()]
    assert ["ADDED", "made-later"] in events
    assert events.index(["ADDED", "made-later"]) < events.index(["DELETED", "made-later"])


def test_kubectl_logs_follow_receives_lines_appended_later(kubectl: Any, twin: Any, kube_client: Any) -> None:
    namespace = "default"
    pod = f"logger-{uuid.uuid4().hex[:6]}"
    core = k8s.CoreV1Api(kube_client)
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": pod}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    )
    twin.admin(
        "POST",
        "/twin/v1/test/append-log",
        json={"namespace": namespace, "pod": pod, "container": "main", "lines": ["first line"]},
    )
    follower = kubectl.popen("logs", "-f", pod, "-n", namespace)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        _wait_until(lambda: "first line\n" in lines, 30, "the existing log line")
        later = ["appended later 1", "appended later 2"]
        twin.admin(
            "POST",
            "/twin/v1/test/append-log",
            json={"namespace": namespace, "pod": pod, "container": "main", "lines": later, "terminate": True},
        )
        assert follower.wait(timeout=30) == 0  # the container terminated: the stream ends
        reader.join(timeout=10)
    finally:
        follower.kill()
        follower.wait()
    assert lines.index("appended later 1\n") < lines.index("appended later 2\n")
    tail = core.read_namespaced_pod_log(pod, namespace, container="main", tail_lines=1)
    assert tail == "appended later 2\n"
    listed = kubectl("get", "pod", pod, "-n", namespace)
    assert listed.stdout.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert listed.stdout.splitlines()[1].split()[0] == pod


def test_pod_log_errors_are_worded_as_the_real_server(kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    spec = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "two"}, "spec": spec})
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("two", namespace)
    assert raised.value.status == 400
    assert json.loads(raised.value.body)["message"] == (
        "a container name must be specified for pod two, choose one of: [a b]"
    )
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log("two", namespace, container="c")
    assert json.loads(raised.value.body)["message"] == "container c is not valid for pod two"


def test_kubectl_delete_with_cascade_removes_dependents(
    kubectl: Any, kube_client: Any, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for child in ("child-a", "child-b"):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": child, "ownerReferences": [reference]}}
        )
    deleted = kubectl(
        "delete", "configmap", "owner", "-n", namespace, "--cascade=foreground", "--timeout=60s"
    )
    assert deleted.returncode == 0, deleted.stderr
    assert 'configmap "owner" deleted' in deleted.stdout

    def remaining() -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map(namespace).items} - {
            "kube-root-ca.crt"
        }

    _wait_until(lambda: not remaining(), 30, "the dependents to be garbage-collected")


# ---- custom resources, watches, errors -------------------------------------------------------


def test_invalid_custom_object_is_rejected_with_its_field_path(
    kubectl: Any, kube_client: Any, widgets: str, namespace: str
) -> None:
    bad = {
        "apiVersion": "test.twin.io/v1",
        "kind": "Widget",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"size": "large"},
    }
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(bad))
    assert result.returncode == 1
    assert "spec.size" in result.stderr and "integer" in result.stderr
    with pytest.raises(ApiException) as raised:
        k8s.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            "test.twin.io", "v1", namespace, "widgets", {**bad, "spec": {"size": 0}}
        )
    assert raised.value.status == 422
    status = json.loads(raised.value.body)
    assert status["reason"] == "Invalid" and status["details"]["causes"][0]["field"] == "spec.size"


def _change(event: dict[str, Any]) -> tuple[str, str, str | None]:
    obj = event["object"]
    value = None if event["type"] == "DELETED" else (obj.data or {}).get("i")
    return event["type"], obj.metadata.name, value


def test_watch_sees_every_change_in_order_across_a_reconnect(kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    start_rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    writer_client = k8s.CoreV1Api(k8s.ApiClient(kube_client.configuration))
    expected: list[tuple[str, str, str | None]] = []

    def write() -> None:
        for index in range(20):
            name = f"cm-{index % 5}"
            try:
                writer_client.create_namespaced_config_map(
                    namespace, {"metadata": {"name": name}, "data": {"i": "0"}}
                )
                expected.append(("ADDED", name, "0"))
            except ApiException:
                if index % 3 == 0:
                    writer_client.delete_namespaced_config_map(name, namespace)
                    expected.append(("DELETED", name, None))
                else:
                    writer_client.patch_namespaced_config_map(name, namespace, {"data": {"i": str(index)}})
                    expected.append(("MODIFIED", name, str(index)))

    seen: list[tuple[str, str, str | None]] = []
    last_rv = start_rv
    first = watch.Watch()
    writer = threading.Thread(target=write)
    writer.start()
    for event in first.stream(
        core.list_namespaced_config_map, namespace, resource_version=start_rv, timeout_seconds=30
    ):
        obj = event["object"]
        last_rv = obj.metadata.resource_version
        if obj.metadata.name.startswith("cm-"):
            seen.append(_change(event))
        if len(seen) == 7:
            first.stop()  # drop the connection mid-stream; resume from the last resourceVersion
    writer.join(timeout=30)
    second = watch.Watch()
    for event in second.stream(
        core.list_namespaced_config_map, namespace, resource_version=last_rv, timeout_seconds=30
    ):
        if event["object"].metadata.name.startswith("cm-"):
            seen.append(_change(event))
        if len(seen) >= len(expected):
            second.stop()
    assert seen == expected


def _raw(
    twin: Any,
    method: str,
    path: str,
    content: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    token = (twin.home / "token").read_text().strip()
    return httpx.request(
        method,
        twin.endpoints["kubernetes"] + path,
        content=content,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type, **(headers or {})},
        verify=ssl.create_default_context(cafile=str(twin.ca_cert)),
    )


def _assert_status(response: httpx.Response, code: int, reason: str, message_part: str) -> None:
    body = response.json()
    assert response.status_code == code, body
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    assert message_part in body["message"], body["message"]


def test_bad_requests_get_the_real_status_codes_and_bodies(twin: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    _assert_status(
        _raw(twin, "POST", path, b'{"metadata": {"name": '),
        400,
        "BadRequest",
        "couldn't get version/kind; json parse error",
    )
    _assert_status(
        _raw(twin, "POST", path, b"metadata: [unclosed", "application/yaml"),
        400,
        "BadRequest",
        "error converting YAML to JSON",
    )
    _assert_status(
        _raw(twin, "GET", "/apis/nothing.example.com/v1/gizmos", b""),
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    wrong_version = json.dumps(
        {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    ).encode()
    _assert_status(
        _raw(twin, "POST", path, wrong_version),
        400,
        "BadRequest",
        "the API version in the data (apps/v1) does not match the expected API version (v1)",
    )
    too_long = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x" * 254}}).encode()
    response = _raw(twin, "POST", path, too_long)
    _assert_status(response, 422, "Invalid", "metadata.name")
    assert response.json()["details"]["causes"][0]["field"] == "metadata.name"
    missing = _raw(twin, "GET", f"{path}/does-not-exist", b"")
    _assert_status(missing, 404, "NotFound", 'configmaps "does-not-exist" not found')
    bad_patch = _raw(twin, "PATCH", f"{path}/x", b"{}", "application/vnd.unknown")
    _assert_status(bad_patch, 415, "UnsupportedMediaType", "accepted media types include")


def test_python_client_crud_conflict_and_table(twin: Any, kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "c1", "labels": {"a": "1"}}})
    assert created.metadata.uid and created.metadata.resource_version
    created.data = {"k": "v"}
    replaced = core.replace_namespaced_config_map("c1", namespace, created)
    assert replaced.data == {"k": "v"}
    with pytest.raises(ApiException) as raised:
        core.replace_namespaced_config_map("c1", namespace, created)  # stale resourceVersion
    assert raised.value.status == 409
    page = core.list_namespaced_config_map(namespace, limit=1)
    assert len(page.items) == 1
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    table = _raw(twin, "GET", f"/api/v1/namespaces/{namespace}/configmaps", b"", headers=accept).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    core.delete_namespaced_config_map("c1", namespace)
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_config_map("c1", namespace)
    assert raised.value.status == 404


def test_service_proxy_reaches_a_ready_replica_or_answers_503(kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    labels = {"app.kubernetes.io/name": "demo", "kserve.io/component": "workload"}
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "demo-kserve-workload-svc"},
            "spec": {"selector": labels, "ports": [{"name": "https", "port": 8000, "targetPort": 8000}]},
        },
    )
    with pytest.raises(ApiException) as raised:
        core.connect_get_namespaced_service_proxy_with_path(
            "https:demo-kserve-workload-svc:8000", namespace, "v1/models"
        )
    assert raised.value.status == 503
    assert (
        json.loads(raised.value.body)["message"]
        == 'no endpoints available for service "demo-kserve-workload-svc"'
    )

    container = {"name": "main", "image": "vllm", "ports": [{"containerPort": 8000, "name": "https"}]}
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "demo-0", "labels": labels}, "spec": {"containers": [container]}}
    )

    def models() -> Any:
        try:
            return core.connect_get_namespaced_service_proxy_with_path(
                "https:demo-kserve-workload-svc:8000", namespace, "v1/models"
            )
        except ApiException as exc:
            if exc.status != 503:
                raise
            return None

    answer = _wait_until(models, 60, "the replica behind the service to become ready")
    assert "/mnt/models" in answer  # the replica's model list, relayed by the API server


def test_status_and_scale_puts_honour_dry_run_and_field_manager(
    kube_client: Any, namespace: str, widgets: str
) -> None:
    custom = k8s.CustomObjectsApi(kube_client)
    widget = {"apiVersion": "test.twin.io/v1", "kind": "Widget", "metadata": {"name": "w-put"}}
    created = custom.create_namespaced_custom_object("test.twin.io", "v1", namespace, "widgets", widget)
    with_status = {**created, "status": {"phase": "Shiny"}}
    path = ("test.twin.io", "v1", namespace, "widgets", "w-put")
    dry = custom.replace_namespaced_custom_object_status(*path, with_status, dry_run="All")
    assert dry["status"] == {"phase": "Shiny"}
    assert "status" not in custom.get_namespaced_custom_object(*path)  # a dry run stores nothing
    custom.replace_namespaced_custom_object_status(*path, with_status, field_manager="status-writer")
    stored = custom.get_namespaced_custom_object(*path)
    assert stored["status"] == {"phase": "Shiny"}
    assert "status-writer" in [m["manager"] for m in stored["metadata"]["managedFields"]]

    apps = k8s.AppsV1Api(kube_client)
    labels = {"app": "scaled"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    spec = {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "scaled"}, "spec": spec})
    scale = {"metadata": {"name": "scaled", "namespace": namespace}, "spec": {"replicas": 3}}
    apps.replace_namespaced_deployment_scale("scaled", namespace, scale, dry_run="All")
    assert apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 1
    apps.replace_namespaced_deployment_scale("scaled", namespace, scale, field_manager="scaler")
    scaled = apps.read_namespaced_deployment("scaled", namespace)
    assert scaled.spec.replicas == 3
    assert "scaler" in [m.manager for m in scaled.metadata.managed_fields]


def test_delete_collection_honours_selectors_and_dry_run(kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    for name, labels in (("doomed-1", {"fate": "doomed"}), ("doomed-2", {"fate": "doomed"}), ("kept", {})):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def names() -> list[str]:
        return sorted(c.metadata.name for c in core.list_namespaced_config_map(namespace).items)

    before = names()
    core.delete_collection_namespaced_config_map(namespace, label_selector="fate=doomed", dry_run="All")
    assert names() == before
    core.delete_collection_namespaced_config_map(namespace, label_selector="fate=doomed")
    assert "kept" in names() and not [n for n in names() if n.startswith("doomed")]


def test_proxy_to_a_missing_service_or_pod_answers_404_as_kube_apiserver(
    kube_client: Any, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_client)
    calls = {
        'services "nowhere" not found': lambda: core.connect_get_namespaced_service_proxy_with_path(
            "https:nowhere:8000", namespace, "v1/models"
        ),
        'pods "nobody" not found': lambda: core.connect_get_namespaced_pod_proxy_with_path(
            "nobody", namespace, "health"
        ),
    }
    for message, call in calls.items():
        with pytest.raises(ApiException) as raised:
            call()
        assert raised.value.status == 404
        body = json.loads(raised.value.body)
        assert (body["reason"], body["message"]) == ("NotFound", message)


def test_api_flaky_scenario_fails_a_share_of_calls_with_retry_after(twin: Any, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    token = (twin.home / "token").read_text().strip()
    session = httpx.Client(
        base_url=twin.endpoints["kubernetes"],
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=str(twin.ca_cert)),
    )
    twin.set_scenarios(["api-flaky"])
    try:
        codes = []
        for _ in range(100):
            response = session.get(path)
            codes.append(response.status_code)
            if response.status_code != 200:
                assert response.headers["Retry-After"] == "1"
                body = response.json()
                assert body["kind"] == "Status" and body["code"] == response.status_code
                assert body["reason"] in ("TooManyRequests", "InternalError")
        failures = [c for c in codes if c != 200]
        assert set(failures) <= {429, 500} and 1 <= len(failures) <= 25, codes
        assert all(session.get("/healthz").status_code == 200 for _ in range(30))
    finally:
        twin.set_scenarios([])
    assert all(session.get(path).status_code == 200 for _ in range(30))
    session.close()


def test_binding_eviction_and_deletecollection(kube_client: Any, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_client)
    nodes = [n.metadata.name for n in core.list_node().items]
    spec = {"schedulerName": "manual", "containers": [{"name": "main", "image": "busybox"}]}
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "manual", "labels": {"batch": "x"}}, "spec": spec}
    )
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "manual"},
        "target": {"name": nodes[0]},
    }
    answer = core.create_namespaced_pod_binding("manual", namespace, binding, _preload_content=False)
    assert answer.status == 201 and json.loads(answer.data)["status"] == "Success"
    assert core.read_namespaced_pod("manual", namespace).spec.node_name == nodes[0]
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_pod_binding("manual", namespace, binding, _preload_content=False)
    assert (
        raised.value.status == 409
        and "is already assigned to node" in json.loads(raised.value.body)["message"]
    )

    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "manual", "namespace": namespace},
    }
    answer = core.create_namespaced_pod_eviction("manual", namespace, eviction, _preload_content=False)
    assert answer.status == 201

    def evicted() -> bool:
        try:
            return core.read_namespaced_pod("manual", namespace).metadata.deletion_timestamp is not None
        except ApiException as exc:
            return exc.status == 404

    _wait_until(evicted, 30, "the evicted pod to be terminating or gone")

    for name in ("a", "b", "c"):
        labels = {"batch": "x"} if name != "c" else {"batch": "y"}
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})
    core.delete_collection_namespaced_config_map(namespace, label_selector="batch=x")
    left = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items} - {"kube-root-ca.crt"}
    assert left == {"c"}
