"""The twin's object store: Kubernetes semantics driven directly (no HTTP)."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
import yaml

from rhaii_nb.twin import snapshot
from rhaii_nb.twin.store import ApiError, Store

pytestmark = pytest.mark.timeout(60)

SCHEMAS = Path(__file__).resolve().parents[2] / "rhaii_nb" / "data" / "schemas"
# libyaml's loader: the pure-Python one takes seconds on the 1 MB CRD on a busy machine.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.fixture(scope="module")
def llmisvc_crd() -> dict:
    return yaml.load(
        (SCHEMAS / "kserve" / "serving.kserve.io_llminferenceservices.yaml").read_text(), Loader=YAML_LOADER
    )


@pytest.fixture
def store() -> Store:
    s = Store()
    s.create(s.resource("", "v1", "namespaces"), {"metadata": {"name": "demo"}})
    return s


def rt(store: Store, plural: str, group: str = "", version: str = "v1"):
    return store.resource(group, version, plural)


def deployment(name: str = "web", replicas: int = 2, image: str = "nginx:1.27") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def pod(name: str, labels: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "demo", "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}], **spec},
    }


def llmisvc(name: str = "qwen", **spec) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "LLMInferenceService",
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"model": {"uri": "hf://Qwen/Qwen2.5-3B-Instruct"}, "replicas": 3, **spec},
    }


def raises(fn, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------- metadata, errors


def test_create_fills_server_metadata_and_rv_is_global_and_monotonic(store):
    deploys = rt(store, "deployments", "apps")
    first = store.create(deploys, deployment("a"), field_manager="kubectl-create")
    second = store.create(rt(store, "configmaps"), {"metadata": {"name": "c", "namespace": "demo"}})
    meta = first["metadata"]
    assert len(meta["uid"]) == 36 and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z") and len(meta["creationTimestamp"]) == 20
    assert int(second["metadata"]["resourceVersion"]) == int(meta["resourceVersion"]) + 1
    assert "generation" not in second["metadata"]  # configmaps do not track generation
    entry = meta["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == (
        "kubectl-create",
        "Update",
        "FieldsV1",
    )
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert "f:status" not in entry["fieldsV1"]
    assert first["status"] == {}
    assert first["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}


def test_error_shapes_match_the_api_server(store):
    pods = rt(store, "pods")
    missing = raises(store.get, pods, "nope", "demo")
    assert (missing.code, missing.reason, missing.message) == (404, "NotFound", 'pods "nope" not found')
    assert missing.details == {"name": "nope", "kind": "pods"}
    store.create(pods, pod("p"))
    dup = raises(store.create, pods, pod("p"))
    assert (dup.code, dup.reason, dup.message) == (409, "AlreadyExists", 'pods "p" already exists')
    long_name = "s" * 64
    bad = raises(
        store.create,
        rt(store, "services"),
        {"metadata": {"name": long_name, "namespace": "demo"}, "spec": {"ports": [{"port": 80}]}},
    )
    assert bad.code == 422 and bad.reason == "Invalid"
    assert bad.message == (
        f'Service "{long_name}" is invalid: metadata.name: Invalid value: "{long_name}": '
        "must be no more than 63 characters"
    )
    assert bad.details["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "{long_name}": must be no more than 63 characters',
            "field": "metadata.name",
        }
    ]
    upper = raises(
        store.create, rt(store, "configmaps"), {"metadata": {"name": "Bad_Name", "namespace": "demo"}}
    )
    assert "a lowercase RFC 1123 subdomain must consist of" in upper.message
    assert upper.message.startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"'
    )
    grouped = raises(
        store.create,
        rt(store, "deployments", "apps"),
        {"metadata": {"name": "d", "namespace": "demo"}, "spec": {"template": {"spec": {"containers": []}}}},
    )
    assert grouped.message.startswith('Deployment.apps "d" is invalid: [spec.selector: Required value, ')
    assert grouped.details["group"] == "apps" and grouped.details["kind"] == "Deployment"
    no_ns = raises(store.create, rt(store, "configmaps"), {"metadata": {"name": "c", "namespace": "ghost"}})
    assert (no_ns.code, no_ns.message) == (404, 'namespaces "ghost" not found')
    mismatch = raises(
        store.create, rt(store, "configmaps"), {"metadata": {"name": "c", "namespace": "x"}}, "demo"
    )
    assert mismatch.code == 400 and "does not match the namespace" in mismatch.message
    wrong_kind = raises(
        store.create, pods, {"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}}
    )
    assert wrong_kind.code == 400
    assert (
        wrong_kind.message
        == "the API version in the data (apps/v1) does not match the expected API version (v1)"
    )


def test_update_conflict_on_stale_resource_version(store):
    cms = rt(store, "configmaps")
    created = store.create(cms, {"metadata": {"name": "c", "namespace": "demo"}, "data": {"a": "1"}})
    fresh = copy.deepcopy(created)
    fresh["data"]["a"] = "2"
    store.update(cms, fresh)
    stale = copy.deepcopy(created)
    stale["data"]["a"] = "3"
    err = raises(store.update, cms, stale)
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your '
        "changes to the latest version and try again"
    )


def test_generate_name_and_secret_string_data(store):
    secrets = rt(store, "secrets")
    made = store.create(
        secrets,
        {"metadata": {"generateName": "hf-", "namespace": "demo"}, "stringData": {"token": "hunter2"}},
    )
    name = made["metadata"]["name"]
    assert name.startswith("hf-") and len(name) == 8
    assert set(name[3:]) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert made["data"] == {"token": "aHVudGVyMg=="} and "stringData" not in made and made["type"] == "Opaque"


def test_generation_bumps_on_spec_only_and_status_is_separate(store):
    deploys = rt(store, "deployments", "apps")
    obj = store.create(deploys, deployment())
    obj["metadata"]["labels"]["extra"] = "yes"
    obj["status"] = {"replicas": 99}
    after_meta = store.update(deploys, obj)
    assert after_meta["metadata"]["generation"] == 1
    assert after_meta["status"] == {}  # status ignored on the main resource
    status_body = copy.deepcopy(after_meta)
    status_body["status"] = {"replicas": 2, "readyReplicas": 1}
    status_body["spec"]["replicas"] = 7  # ignored on the status subresource
    after_status = store.update(deploys, status_body, subresource="status", field_manager="ctrl")
    assert after_status["status"] == {"replicas": 2, "readyReplicas": 1}
    assert after_status["spec"]["replicas"] == 2 and after_status["metadata"]["generation"] == 1
    status_entry = next(m for m in after_status["metadata"]["managedFields"] if m["manager"] == "ctrl")
    assert status_entry["subresource"] == "status" and list(status_entry["fieldsV1"]) == ["f:status"]
    spec_change = store.patch(deploys, "web", {"spec": {"replicas": 5}}, "merge", "demo")
    assert spec_change["metadata"]["generation"] == 2 and spec_change["status"]["readyReplicas"] == 1


def test_noop_update_keeps_resource_version(store):
    cms = rt(store, "configmaps")
    created = store.create(cms, {"metadata": {"name": "c", "namespace": "demo"}, "data": {"a": "1"}})
    again = store.update(cms, copy.deepcopy(created))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


# ---------------------------------------------------------------- patches


def test_strategic_merge_patch_merges_containers_by_name(store):
    deploys = rt(store, "deployments", "apps")
    base = deployment()
    base["spec"]["template"]["spec"]["containers"].append(
        {"name": "side", "image": "envoy:1", "env": [{"name": "A", "value": "1"}]}
    )
    store.create(deploys, base)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "side", "env": [{"name": "B", "value": "2"}]},
                        {"name": "main", "image": "nginx:1.28"},
                    ]
                }
            }
        }
    }
    out = store.patch(deploys, "web", patch, "strategic", "demo", field_manager="kubectl-patch")
    containers = {c["name"]: c for c in out["spec"]["template"]["spec"]["containers"]}
    assert containers["main"]["image"] == "nginx:1.28"
    assert containers["side"]["image"] == "envoy:1"
    assert containers["side"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    out = store.patch(deploys, "web", delete, "strategic", "demo")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["main"]
    merged = store.patch(
        deploys,
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}},
        "merge",
        "demo",
    )
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["only"]  # merge replaces
    jp = store.patch(
        deploys, "web", [{"op": "replace", "path": "/spec/replicas", "value": 4}], "json", "demo"
    )
    assert jp["spec"]["replicas"] == 4
    failed = raises(
        store.patch, deploys, "web", [{"op": "test", "path": "/spec/replicas", "value": 9}], "json", "demo"
    )
    assert failed.code == 422


def test_strategic_patch_is_refused_for_custom_resources(store, llmisvc_crd):
    store.register_crd(llmisvc_crd)
    kind = rt(store, "llminferenceservices", "serving.kserve.io", "v1alpha1")
    store.create(kind, llmisvc())
    err = raises(store.patch, kind, "qwen", {"spec": {"replicas": 1}}, "strategic", "demo")
    assert err.code == 415


# ---------------------------------------------------------------- server-side apply


def test_server_side_apply_noop_conflict_force_and_field_removal(store):
    deploys = rt(store, "deployments", "apps")
    body = deployment()
    body["metadata"]["annotations"] = {"team": "inference"}
    first = store.patch(deploys, "web", body, "apply", "demo", field_manager="kubectl")
    assert first["metadata"]["managedFields"][0]["operation"] == "Apply"
    fields = first["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}'] == {
        ".": {},
        "f:image": {},
        "f:name": {},
    }
    assert fields["f:spec"]["f:selector"] == {}  # label selectors are atomic
    rv = first["metadata"]["resourceVersion"]

    second = store.patch(deploys, "web", copy.deepcopy(body), "apply", "demo", field_manager="kubectl")
    assert second["metadata"]["resourceVersion"] == rv  # unchanged: no write

    # A client-side-apply style update owns replicas, then a different applier conflicts.
    store.patch(
        deploys,
        "web",
        {"spec": {"replicas": 3}},
        "strategic",
        "demo",
        field_manager="kubectl-client-side-apply",
    )
    other = copy.deepcopy(body)
    other["spec"]["replicas"] = 5
    err = raises(store.patch, deploys, "web", other, "apply", "demo", field_manager="kubectl")
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas"
    )
    assert err.details["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
            "field": ".spec.replicas",
        }
    ]
    # Same value as live: shared ownership, no conflict.
    same = copy.deepcopy(body)
    same["spec"]["replicas"] = 3
    store.patch(deploys, "web", same, "apply", "demo", field_manager="kubectl")
    forced = store.patch(deploys, "web", other, "apply", "demo", field_manager="kubectl", force=True)
    assert forced["spec"]["replicas"] == 5
    csa = [m for m in forced["metadata"]["managedFields"] if m["manager"] == "kubectl-client-side-apply"]
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in csa)

    # Omitting a field this manager alone applied removes it; a field someone else owns stays.
    store.patch(
        deploys, "web", {"metadata": {"labels": {"owner": "me"}}}, "merge", "demo", field_manager="ops"
    )
    trimmed = copy.deepcopy(other)
    del trimmed["metadata"]["annotations"]
    trimmed["metadata"]["labels"] = {}
    out = store.patch(deploys, "web", trimmed, "apply", "demo", field_manager="kubectl")
    assert "team" not in (out["metadata"].get("annotations") or {})
    assert out["metadata"]["labels"] == {"owner": "me"}


def test_apply_merges_list_items_granularly_between_managers(store):
    deploys = rt(store, "deployments", "apps")
    store.patch(deploys, "web", deployment(), "apply", "demo", field_manager="a")
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1"}]}}},
    }
    out = store.patch(deploys, "web", sidecar, "apply", "demo", field_manager="b")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["main", "proxy"]
    # b stops applying its container: it goes, a's stays.
    del sidecar["spec"]["template"]["spec"]["containers"][0]
    sidecar["spec"]["template"]["spec"]["containers"] = []
    out = store.patch(deploys, "web", sidecar, "apply", "demo", field_manager="b")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["main"]


def test_apply_requires_field_manager_and_creates(store):
    cms = rt(store, "configmaps")
    err = raises(store.patch, cms, "x", {"apiVersion": "v1", "kind": "ConfigMap"}, "apply", "demo")
    assert err.code == 422 and "fieldManager: Required value" in err.message
    made = store.patch(
        cms,
        "x",
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}},
        "apply",
        "demo",
        field_manager="kubectl",
    )
    assert made["data"] == {"k": "v"}
    assert [(m["manager"], m["operation"]) for m in made["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")
    ]


# ---------------------------------------------------------------- list, selectors, watch


def test_label_and_field_selectors(store):
    pods = rt(store, "pods")
    store.create(pods, pod("a", {"app": "vllm", "tier": "gpu"}))
    store.create(pods, pod("b", {"app": "vllm"}))
    store.create(pods, pod("c", {"app": "epp", "legacy": "1"}))
    names = lambda sel: [p["metadata"]["name"] for p in store.list(pods, "demo", label_selector=sel)[0]]  # noqa: E731
    assert names("app=vllm") == ["a", "b"]
    assert names("app!=vllm") == ["c"]
    assert names("app in (epp, vllm),tier") == ["a"]
    assert names("app notin (vllm)") == ["c"]
    assert names("!legacy") == ["a", "b"]
    assert names("tier=gpu,app==vllm") == ["a"]
    bad = raises(store.list, pods, "demo", label_selector="app in (x")
    assert bad.code == 400
    by_name = store.list(pods, "demo", field_selector="metadata.name=b")[0]
    assert [p["metadata"]["name"] for p in by_name] == ["b"]
    pending = store.list(pods, None, field_selector="status.phase=Pending,spec.nodeName=")[0]
    assert len(pending) == 3
    unsupported = raises(store.list, pods, "demo", field_selector="spec.image=x")
    assert (unsupported.code, unsupported.message) == (400, "field label not supported: spec.image")
    secrets = rt(store, "secrets")
    store.create(
        secrets,
        {
            "metadata": {"name": "s", "namespace": "demo"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""},
        },
    )
    assert len(store.list(secrets, "demo", field_selector="type=kubernetes.io/tls")[0]) == 1


def test_list_pages_with_continue_tokens(store):
    cms = rt(store, "configmaps")
    for i in range(5):
        store.create(cms, {"metadata": {"name": f"c{i}", "namespace": "demo"}})
    first = store.list(cms, "demo", limit=2)
    assert [o["metadata"]["name"] for o in first.items] == ["c0", "c1"] and first.remaining == 3
    store.create(cms, {"metadata": {"name": "c9", "namespace": "demo"}})  # not in the snapshot
    second = store.list(cms, "demo", limit=2, continue_token=first.continue_token)
    third = store.list(cms, "demo", limit=2, continue_token=second.continue_token)
    assert [o["metadata"]["name"] for o in second.items + third.items] == ["c2", "c3", "c4"]
    assert third.continue_token is None and third.resource_version == first.resource_version
    assert raises(store.list, cms, "demo", continue_token="garbage!").code == 400


async def _take(watch, n: int) -> list:
    out = []
    for _ in range(n):
        out.append(await asyncio.wait_for(watch.__anext__(), 5))
    return out


def test_watch_initial_state_live_events_and_replay(store):
    async def scenario():
        pods = rt(store, "pods")
        store.create(pods, pod("a", {"app": "x"}))
        live = store.watch(pods, "demo", resource_version="0")
        watchers = [store.watch(pods, "demo") for _ in range(3)]
        start_rv = store.resource_version
        for i in range(20):
            store.patch(pods, "a", {"metadata": {"labels": {"n": str(i)}}}, "merge", "demo")
        store.delete(pods, "a", "demo")
        events = await _take(live, 22)
        assert events[0].type == "ADDED" and events[-1].type == "DELETED"
        assert [e.object["metadata"]["labels"].get("n") for e in events[1:21]] == [str(i) for i in range(20)]
        rvs = [int(e.object["metadata"]["resourceVersion"]) for e in events]
        assert rvs == sorted(rvs)
        for w in watchers:  # concurrent watchers see the same sequence
            assert [e.object["metadata"]["resourceVersion"] for e in await _take(w, 22)] == [
                str(r) for r in rvs
            ]
        replay = store.watch(pods, "demo", resource_version=start_rv)
        replayed = await _take(replay, 21)
        assert [e.type for e in replayed] == ["MODIFIED"] * 20 + ["DELETED"]
        assert replayed[0].object["metadata"]["resourceVersion"] == str(int(start_rv) + 1)
        for w in [live, replay, *watchers]:
            w.close()

    asyncio.run(scenario())


def test_watch_selector_transitions_and_too_old_rv():
    async def scenario():
        store = Store(history_size=5)
        store.create(store.resource("", "v1", "namespaces"), {"metadata": {"name": "demo"}})
        pods = store.resource("", "v1", "pods")
        watch = store.watch(pods, "demo", resource_version=store.resource_version, label_selector="ready=yes")
        store.create(pods, pod("p", {"ready": "no"}))
        store.patch(pods, "p", {"metadata": {"labels": {"ready": "yes"}}}, "merge", "demo")
        store.patch(pods, "p", {"metadata": {"labels": {"ready": "no"}}}, "merge", "demo")
        events = await _take(watch, 2)
        assert [e.type for e in events] == ["ADDED", "DELETED"]
        for i in range(10):
            store.create(
                store.resource("", "v1", "configmaps"), {"metadata": {"name": f"c{i}", "namespace": "demo"}}
            )
        err = raises(store.watch, pods, "demo", resource_version="2")
        assert (err.code, err.reason) == (410, "Expired")
        assert err.message.startswith("too old resource version: 2 (")
        watch.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- delete, finalizers, namespaces


def test_finalizers_hold_deletion_until_removed(store):
    cms = rt(store, "configmaps")
    store.create(cms, {"metadata": {"name": "held", "namespace": "demo", "finalizers": ["example.com/keep"]}})
    deleting = store.delete(cms, "held", "demo")
    assert deleting["metadata"]["deletionTimestamp"] and store.exists(cms, "held", "demo")
    body = store.get(cms, "held", "demo")
    body["metadata"]["finalizers"] = []
    store.update(cms, body)
    assert not store.exists(cms, "held", "demo")


def test_pod_graceful_deletion_only_when_bound(store):
    pods = rt(store, "pods")
    store.create(pods, pod("unbound"))
    store.delete(pods, "unbound", "demo")
    assert not store.exists(pods, "unbound", "demo")
    store.create(pods, pod("bound"))
    store.bind_pod("bound", "demo", "node-1")
    assert raises(store.bind_pod, "bound", "demo", "node-2").code == 409
    terminating = store.delete(pods, "bound", "demo")
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.exists(pods, "bound", "demo")
    store.finalize_pod_deletion("bound", "demo")
    assert not store.exists(pods, "bound", "demo")


def test_terminating_namespace_refuses_new_content(store):
    namespaces = rt(store, "namespaces")
    store.create(namespaces, {"metadata": {"name": "doomed"}})
    ns = store.delete(namespaces, "doomed")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    err = raises(store.create, rt(store, "configmaps"), {"metadata": {"name": "late", "namespace": "doomed"}})
    assert (err.code, err.reason) == (403, "Forbidden")
    assert err.message == (
        'configmaps "late" is forbidden: unable to create new content in namespace doomed '
        "because it is being terminated"
    )
    store.finalize_namespace("doomed")
    assert not store.exists(namespaces, "doomed")


# ---------------------------------------------------------------- CRDs


def test_crd_registration_validation_and_removal(store, llmisvc_crd):
    crd = store.register_crd(llmisvc_crd)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    kind = store.find_resource("serving.kserve.io", None, "llmisvc")
    assert kind is not None and kind.kind == "LLMInferenceService" and kind.has_subresource("status")
    assert kind in store.resource_types()

    made = store.create(kind, llmisvc())
    assert made["metadata"]["generation"] == 1

    strict = raises(store.create, kind, llmisvc("typo", modle="x"), field_validation="Strict")
    assert (strict.code, strict.reason) == (400, "BadRequest")
    assert strict.message == (
        'LLMInferenceService in version "v1alpha1" cannot be handled as a LLMInferenceService: '
        'strict decoding error: unknown field "spec.modle"'
    )
    warnings: list[str] = []
    pruned = store.create(kind, llmisvc("pruned", modle="x"), field_validation="Warn", warnings=warnings)
    assert "modle" not in pruned["spec"] and warnings == ['unknown field "spec.modle"']
    applied = raises(
        store.patch, kind, "typo2", llmisvc("typo2", modle="x"), "apply", "demo", field_manager="kubectl"
    )
    assert applied.code == 400 and applied.message.endswith(".spec.modle: field not declared in schema")

    typed = raises(
        store.create, kind, {**llmisvc("bad"), "spec": {"model": {"uri": "x"}, "replicas": "three"}}
    )
    assert typed.code == 422
    assert typed.message == (
        'LLMInferenceService.serving.kserve.io "bad" is invalid: spec.replicas: Invalid value: "string": '
        'spec.replicas in body must be of type integer: "string"'
    )
    assert typed.details["causes"][0]["field"] == "spec.replicas"
    required = raises(store.create, kind, {**llmisvc("req"), "spec": {"model": {}}})
    assert "spec.model.uri: Required value" in required.message
    enum = raises(store.create, kind, llmisvc("en", model={"uri": "x", "criticality": "Urgent"}))
    assert 'spec.model.criticality: Unsupported value: "Urgent": supported values: "Critical"' in enum.message
    negative = raises(store.create, kind, llmisvc("neg", replicas=-1))
    assert "spec.replicas in body should be greater than or equal to 0" in negative.message

    status = store.get(kind, "qwen", "demo")
    status["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    status["spec"]["replicas"] = 1
    after = store.update(kind, status, subresource="status")
    assert after["spec"]["replicas"] == 3 and after["metadata"]["generation"] == 1

    store.unregister_crd("llminferenceservices.serving.kserve.io")
    assert store.find_resource("serving.kserve.io", None, "llminferenceservices") is None
    gone = raises(store.resource, "serving.kserve.io", "v1alpha1", "llminferenceservices")
    assert gone.code == 404


def test_crd_schema_is_compiled_once_not_per_create(store, llmisvc_crd, monkeypatch):
    from rhaii_nb.twin import store as store_module

    compiled: list[str] = []
    real_type_for = store_module.type_for

    def counting_type_for(storage, schema):
        compiled.append(storage)
        return real_type_for(storage, schema)

    monkeypatch.setattr(store_module, "type_for", counting_type_for)
    store.register_crd(llmisvc_crd)
    kind = rt(store, "llminferenceservices", "serving.kserve.io", "v1alpha1")
    store.create(kind, llmisvc("warm"))
    assert compiled.count(kind.storage) == 1
    for i in range(20):
        store.create(kind, llmisvc(f"q{i}"))
    # Speed itself is a benchmark's business; what made creates slow was a per-call schema compile.
    assert compiled.count(kind.storage) == 1
    assert len(store.list(kind, "demo")[0]) == 21


# ---------------------------------------------------------------- events, admission, scale, snapshot


def test_record_event_aggregates_and_shows_through_events_api(store):
    pods = rt(store, "pods")
    target = store.create(pods, pod("p"))
    first = store.record_event(target, "Pulling", 'Pulling image "busybox:1"', source_component="kubelet")
    again = store.record_event(target, "Pulling", 'Pulling image "busybox:1"', source_component="kubelet")
    assert again["metadata"]["name"] == first["metadata"]["name"] and again["count"] == 2
    assert first["involvedObject"]["uid"] == target["metadata"]["uid"]
    listed = store.list(rt(store, "events"), "demo", field_selector="involvedObject.name=p,reason=Pulling")[0]
    assert len(listed) == 1
    new_api = store.list(rt(store, "events", "events.k8s.io"), "demo")[0][0]
    assert new_api["apiVersion"] == "events.k8s.io/v1" and new_api["regarding"]["name"] == "p"
    assert new_api["note"] == 'Pulling image "busybox:1"' and new_api["deprecatedCount"] == 2


def test_admission_hooks_mutate_and_deny(store):
    pods = rt(store, "pods")
    seen = []

    def hook(operation, rtype, obj, old):
        seen.append((operation, rtype.plural))
        if rtype.plural == "pods" and operation == "CREATE":
            obj["spec"]["containers"].append({"name": "istio-proxy", "image": "proxyv2:1"})
            if obj["metadata"].get("labels", {}).get("deny"):
                raise ApiError(400, "BadRequest", 'admission webhook "x" denied the request: no')

    store.add_admission(hook)
    made = store.create(pods, pod("p"))
    assert [c["name"] for c in made["spec"]["containers"]] == ["c", "istio-proxy"]
    err = raises(store.create, pods, pod("q", {"deny": "1"}))
    assert err.code == 400 and not store.exists(pods, "q", "demo")
    store.delete(pods, "p", "demo")
    assert ("DELETE", "pods") in seen


def test_scale_subresource(store):
    deploys = rt(store, "deployments", "apps")
    store.create(deploys, deployment())
    scale = store.get_scale(deploys, "web", "demo")
    assert (
        scale["kind"] == "Scale"
        and scale["spec"]["replicas"] == 2
        and scale["status"]["selector"] == "app=web"
    )
    store.patch(deploys, "web", {"spec": {"replicas": 4}}, "merge", "demo", subresource="scale")
    assert store.get(deploys, "web", "demo")["spec"]["replicas"] == 4


def test_snapshot_round_trip(tmp_path, store, llmisvc_crd):
    store.register_crd(llmisvc_crd)
    kind = rt(store, "llminferenceservices", "serving.kserve.io", "v1alpha1")
    original = store.create(kind, llmisvc())
    store.create(
        rt(store, "configmaps"), {"metadata": {"name": "c", "namespace": "demo"}, "data": {"a": "b"}}
    )
    path = snapshot.save(store, tmp_path / "snapshot.json")
    restored = Store(bootstrap=False)
    assert snapshot.load(restored, path)
    kind2 = restored.resource("serving.kserve.io", "v1alpha1", "llminferenceservices")
    again = restored.get(kind2, "qwen", "demo")
    assert again["metadata"]["uid"] == original["metadata"]["uid"]
    assert restored.resource_version == store.resource_version
    new = restored.create(
        restored.resource("", "v1", "configmaps"), {"metadata": {"name": "d", "namespace": "demo"}}
    )
    assert int(new["metadata"]["resourceVersion"]) > int(store.resource_version)
    assert not snapshot.load(restored, tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not a twin snapshot"):
        snapshot.load(restored, tmp_path / "bad.json")


def test_builtin_unknown_fields_dropped_warned_or_rejected(store):
    deploys = rt(store, "deployments", "apps")
    typo = deployment("typo")
    typo["spec"]["replica"] = 3
    typo["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    strict = raises(store.create, deploys, typo, field_validation="Strict")
    assert strict.code == 400
    assert strict.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee", unknown field "spec.replica"'
    )
    warnings: list[str] = []
    made = store.create(deploys, typo, field_validation="Warn", warnings=warnings)
    assert "replica" not in made["spec"] and "imagee" not in made["spec"]["template"]["spec"]["containers"][0]
    assert warnings == [
        'unknown field "spec.template.spec.containers[0].imagee"',
        'unknown field "spec.replica"',
    ]
    applied = raises(
        store.patch,
        deploys,
        "typo2",
        {**deployment("typo2"), "spec": {"replica": 1}},
        "apply",
        "demo",
        field_manager="kubectl",
    )
    assert applied.message.endswith(".spec.replica: field not declared in schema")
    # Labels, annotations and data maps take any key.
    cm = store.create(
        rt(store, "configmaps"),
        {"metadata": {"name": "m", "namespace": "demo", "labels": {"any.key/x": "y"}}, "data": {"k": "v"}},
        field_validation="Strict",
    )
    assert cm["data"] == {"k": "v"}


@pytest.mark.parametrize(
    ("crd_file", "plural", "body"),
    [
        (
            "gateway.networking.k8s.io_gateways.yaml",
            "gateways",
            {
                "metadata": {"name": "inference-gateway", "namespace": "demo"},
                "spec": {
                    "gatewayClassName": "istio",
                    "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
                },
            },
        ),
        (
            "gateway.networking.k8s.io_gatewayclasses.yaml",
            "gatewayclasses",
            {"metadata": {"name": "istio"}, "spec": {"controllerName": "istio.io/gateway-controller"}},
        ),
    ],
)
def test_identical_reapply_of_an_object_with_a_status_default_is_a_noop(store, crd_file, plural, body):
    # The real API server defaults a created object's status from the CRD schema ("Waiting for
    # controller"), so the second apply of the same manifest changes nothing.
    for doc in yaml.load_all((SCHEMAS / "gateway-api" / crd_file).read_text(), Loader=YAML_LOADER):
        store.register_crd(doc)
    gw_rt = rt(store, plural, "gateway.networking.k8s.io")
    body = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": gw_rt.kind, **body}
    ns = body["metadata"].get("namespace")
    first = store.patch(
        gw_rt, body["metadata"]["name"], copy.deepcopy(body), "apply", ns, field_manager="kubectl"
    )
    conditions = first["status"]["conditions"]
    assert conditions[0]["type"] == "Accepted" and conditions[0]["reason"] == "Pending"
    rv = store.resource_version
    again = store.patch(
        gw_rt, body["metadata"]["name"], copy.deepcopy(body), "apply", ns, field_manager="kubectl"
    )
    assert store.resource_version == rv
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert store.get(gw_rt, body["metadata"]["name"], ns) == again
