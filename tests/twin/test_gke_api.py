"""The twin's GKE API driven by the clients users use: google-cloud-container (REST), httpx, gcloud."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from gke_harness import KUBE_URL, GkeTwin
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import container_v1

from rhaii_nb.twin.gke.server import gcloud_env

PROJECT, ZONE = "twin-project", "europe-west4-a"
PARENT = f"projects/{PROJECT}/locations/{ZONE}"
DONE = container_v1.Operation.Status.DONE


@pytest.fixture
def twin(tmp_path: Path):
    twin = GkeTwin(tmp_path, time_scale=0.001)
    yield twin
    twin.close()


@pytest.fixture
def client(twin: GkeTwin) -> container_v1.ClusterManagerClient:
    return container_v1.ClusterManagerClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options=ClientOptions(api_endpoint=twin.url),
    )


def wait_done(client: container_v1.ClusterManagerClient, op: container_v1.Operation, timeout: float = 30):
    """Poll an operation to DONE, returning every status seen and the final operation."""
    seen = [op.status]
    deadline = time.monotonic() + timeout
    while op.status != DONE:
        assert time.monotonic() < deadline, f"operation {op.name} not DONE after {timeout}s: {op.detail}"
        time.sleep(0.02)
        op = client.get_operation(name=f"{PARENT}/operations/{op.name}")
        seen.append(op.status)
    return seen, op


def system_cluster(name: str = "c1", *, dataplane_v2: bool = True) -> container_v1.Cluster:
    network = container_v1.NetworkConfig()
    if dataplane_v2:
        network.datapath_provider = container_v1.DatapathProvider.ADVANCED_DATAPATH
    return container_v1.Cluster(
        name=name,
        resource_labels={"created-by": "rhaii-nb"},
        node_pools=[
            container_v1.NodePool(
                name="default-pool",
                initial_node_count=2,
                config=container_v1.NodeConfig(machine_type="n1-standard-4"),
            )
        ],
        network_config=network,
    )


def tpu_pool(
    nodes: int = 3, machine_type: str = "ct6e-standard-4t", zone: str = ZONE
) -> container_v1.NodePool:
    return container_v1.NodePool(
        name="tpu-pool",
        initial_node_count=nodes,
        locations=[zone],
        config=container_v1.NodeConfig(machine_type=machine_type),
        placement_policy=container_v1.NodePool.PlacementPolicy(tpu_topology="2x2"),
    )


def ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


@pytest.mark.timeout(60)
def test_cluster_and_pool_lifecycle_through_the_official_client(twin, client):
    op = client.create_cluster(parent=PARENT, cluster=system_cluster())
    assert op.operation_type == container_v1.Operation.Type.CREATE_CLUSTER
    seen, op = wait_done(client, op)
    assert seen[0] == container_v1.Operation.Status.RUNNING and seen[-1] == DONE
    assert op.status_message == "" and not op.error.message
    assert {m.name: m.int_value for m in op.progress.metrics} == {"NODES_TOTAL": 2, "NODES_DONE": 2}

    cluster = client.get_cluster(name=f"{PARENT}/clusters/c1")
    assert cluster.status == container_v1.Cluster.Status.RUNNING
    assert cluster.endpoint == KUBE_URL.removeprefix("https://")
    ca = base64.b64decode(cluster.master_auth.cluster_ca_certificate)
    assert ca == twin.ctx.pki.ca_cert_path.read_bytes()
    assert cluster.resource_labels["created-by"] == "rhaii-nb"
    assert cluster.network_config.datapath_provider == container_v1.DatapathProvider.ADVANCED_DATAPATH
    assert twin.kube_api_calls == ["start"]
    assert twin.ctx.cluster["name"] == "c1" and twin.ctx.cluster["networkPolicyEnforced"] is True
    assert [c.name for c in client.list_clusters(parent=PARENT).clusters] == ["c1"]
    assert [c.name for c in client.list_clusters(parent=f"projects/{PROJECT}/locations/-").clusters] == ["c1"]

    op = client.create_node_pool(parent=f"{PARENT}/clusters/c1", node_pool=tpu_pool(3))
    _, op = wait_done(client, op)
    assert op.status_message == ""
    tpu_nodes = twin.nodes("cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")
    assert len(tpu_nodes) == 3 and all(ready(n) for n in tpu_nodes)
    pool = client.get_node_pool(name=f"{PARENT}/clusters/c1/nodePools/tpu-pool")
    assert pool.status == container_v1.NodePool.Status.RUNNING
    assert pool.placement_policy.tpu_topology == "2x2"
    assert pool.config.machine_type == "ct6e-standard-4t"

    for size in (5, 0, 3):
        op = client.set_node_pool_size(
            request=container_v1.SetNodePoolSizeRequest(
                name=f"{PARENT}/clusters/c1/nodePools/tpu-pool", node_count=size
            )
        )
        assert op.operation_type == container_v1.Operation.Type.SET_NODE_POOL_SIZE
        wait_done(client, op)
        assert len(twin.nodes("cloud.google.com/gke-nodepool=tpu-pool")) == size
    assert client.get_cluster(name=f"{PARENT}/clusters/c1").current_node_count == 5

    wait_done(client, client.delete_node_pool(name=f"{PARENT}/clusters/c1/nodePools/tpu-pool"))
    assert twin.nodes("cloud.google.com/gke-nodepool=tpu-pool") == []
    assert [p.name for p in client.list_node_pools(parent=f"{PARENT}/clusters/c1").node_pools] == [
        "default-pool"
    ]

    wait_done(client, client.delete_cluster(name=f"{PARENT}/clusters/c1"))
    assert twin.kube_api_calls == ["start", "stop"]
    assert twin.ctx.cluster is None
    assert twin.nodes() == []
    with pytest.raises(exceptions.NotFound, match="clusters/c1"):
        client.get_cluster(name=f"{PARENT}/clusters/c1")
    assert list(client.list_clusters(parent=PARENT).clusters) == []
    ops = client.list_operations(parent=PARENT).operations
    assert {o.operation_type.name for o in ops} >= {"CREATE_CLUSTER", "SET_NODE_POOL_SIZE", "DELETE_CLUSTER"}


@pytest.mark.timeout(60)
def test_errors_are_shaped_like_googles(twin, client):
    with pytest.raises(exceptions.NotFound, match=f"Not found: {PARENT}/clusters/nope"):
        client.get_cluster(name=f"{PARENT}/clusters/nope")
    with pytest.raises(
        exceptions.BadRequest, match="Machine type ct6e-standard-4t is not available in zone us-west1-a"
    ):
        client.create_cluster(
            parent="projects/twin-project/locations/us-west1-a",
            cluster=container_v1.Cluster(name="west", node_pools=[tpu_pool(1, zone="us-west1-a")]),
        )
    with pytest.raises(exceptions.BadRequest, match='Invalid TPU topology "2x4"'):
        bad = tpu_pool(1)
        bad.placement_policy.tpu_topology = "2x4"
        client.create_cluster(parent=PARENT, cluster=container_v1.Cluster(name="c0", node_pools=[bad]))
    with pytest.raises(exceptions.BadRequest, match=r"cluster\.name"):
        client.create_cluster(parent=PARENT, cluster=system_cluster("Bad_Name"))

    wait_done(client, client.create_cluster(parent=PARENT, cluster=system_cluster()))
    with pytest.raises(exceptions.Conflict, match=f"Already exists: {PARENT}/clusters/c1"):
        client.create_cluster(parent=PARENT, cluster=system_cluster())
    with pytest.raises(exceptions.BadRequest, match="The twin hosts one cluster") as second:
        client.create_cluster(parent=PARENT, cluster=system_cluster("c2"))
    assert second.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    with pytest.raises(exceptions.NotFound, match="nodePools/missing"):
        client.set_node_pool_size(
            request=container_v1.SetNodePoolSizeRequest(
                name=f"{PARENT}/clusters/c1/nodePools/missing", node_count=1
            )
        )
    running = client.create_node_pool(parent=f"{PARENT}/clusters/c1", node_pool=tpu_pool(1))
    with pytest.raises(exceptions.BadRequest, match="incompatible operation"):
        client.set_node_pool_size(
            request=container_v1.SetNodePoolSizeRequest(
                name=f"{PARENT}/clusters/c1/nodePools/default-pool", node_count=1
            )
        )
    wait_done(client, running)
    with pytest.raises(exceptions.Conflict, match="nodePools/tpu-pool"):
        client.create_node_pool(parent=f"{PARENT}/clusters/c1", node_pool=tpu_pool(1))

    raw = httpx.post(f"{twin.url}/v1/{PARENT}/clusters", content=b"{not json")
    assert raw.status_code == 400
    assert raw.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.timeout(60)
def test_quota_and_iam_for_the_preflight(twin):
    infos = httpx.get(
        f"{twin.url}/v1/projects/{PROJECT}/locations/global/services/compute.googleapis.com/quotaInfos"
    ).json()["quotaInfos"]
    tpu = next(i for i in infos if i["quotaId"] == "TPUS-PER-TPU-FAMILY-per-project-region")
    europe = next(d for d in tpu["dimensionsInfos"] if d["dimensions"]["region"] == "europe-west4")
    assert europe["dimensions"]["tpu_family"] == "CT6E" and europe["details"]["value"] == "64"

    asked = ["container.clusters.create", "container.operations.get", "iam.serviceAccounts.actAs"]
    granted = httpx.post(f"{twin.url}/v3/projects/{PROJECT}:testIamPermissions", json={"permissions": asked})
    assert granted.json() == {"permissions": asked}
    bad = httpx.post(f"{twin.url}/v3/projects/{PROJECT}:testIamPermissions", json={"permissions": ["nope"]})
    assert bad.status_code == 400 and "nope" in bad.json()["error"]["message"]
    assert httpx.get(f"{twin.url}/v1/projects/{PROJECT}").json()["lifecycleState"] == "ACTIVE"
    machine = f"{twin.url}/compute/v1/projects/{PROJECT}/zones"
    assert httpx.get(f"{machine}/{ZONE}/machineTypes/ct6e-standard-4t").json()["guestCpus"] == 180
    assert httpx.get(f"{machine}/us-west1-a/machineTypes/ct6e-standard-4t").status_code == 404

    changed = httpx.put(f"{twin.url}/twin/v1/tpu-quota", json={"region": "europe-west4", "chips": 16})
    assert changed.json()["europe-west4"] == 16


@pytest.mark.timeout(60)
def test_quota_short_pool_gets_only_the_nodes_the_quota_allows(tmp_path):
    twin = GkeTwin(tmp_path, time_scale=0.001, scenarios=frozenset({"quota-short"}))
    try:
        client = container_v1.ClusterManagerClient(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options=ClientOptions(api_endpoint=twin.url),
        )
        infos = httpx.get(
            f"{twin.url}/v1/projects/{PROJECT}/locations/global/services/compute.googleapis.com/quotaInfos/"
            "TPUS-PER-TPU-FAMILY-per-project-region"
        ).json()
        europe = next(d for d in infos["dimensionsInfos"] if d["dimensions"]["region"] == "europe-west4")
        assert europe["details"]["value"] == "8"

        wait_done(client, client.create_cluster(parent=PARENT, cluster=system_cluster()))
        _, op = wait_done(
            client, client.create_node_pool(parent=f"{PARENT}/clusters/c1", node_pool=tpu_pool(3))
        )
        assert "Quota 'TPUS_PER_TPU_FAMILY' exceeded. Limit: 8.0 in region europe-west4" in op.status_message
        assert len(twin.nodes("cloud.google.com/gke-nodepool=tpu-pool")) == 2
        pool = client.get_node_pool(name=f"{PARENT}/clusters/c1/nodePools/tpu-pool")
        assert pool.status == container_v1.NodePool.Status.RUNNING_WITH_ERROR
        assert pool.status_message.startswith("2 of 3 nodes available in node pool tpu-pool")
        assert pool.conditions[0].code == container_v1.StatusCondition.Code.GCE_QUOTA_EXCEEDED
        store = twin.ctx.store
        events = twin.on_loop(lambda: store.list(store.resource("", "v1", "events"), namespace="default")[0])
        assert any("quota" in e["message"].lower() and e["type"] == "Warning" for e in events)
    finally:
        twin.close()


def _gcloud(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["gcloud", *args, "--quiet"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.gcloud
@pytest.mark.timeout(240)
@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_gcloud_drives_the_guide_commands(twin, tmp_path):
    env = gcloud_env(twin.url, tmp_path / "gcloud")
    env["KUBECONFIG"] = str(tmp_path / "kubeconfig")
    created = _gcloud(
        env, "container", "clusters", "create", "rhaii-tpu-scaleout-cluster", "--zone", ZONE,
        "--machine-type", "n1-standard-4", "--num-nodes", "2", "--enable-ip-alias",
        "--labels", "created-by=rhaii-nb",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "rhaii-tpu-scaleout-cluster" in created.stdout
    assert (tmp_path / "kubeconfig").read_text().count(KUBE_URL) == 1  # get-credentials wrote the endpoint

    pool = _gcloud(
        env, "container", "node-pools", "create", "tpu-pool", "--cluster", "rhaii-tpu-scaleout-cluster",
        "--zone", ZONE, "--machine-type", "ct6e-standard-4t", "--num-nodes", "3",
    )  # fmt: skip
    assert pool.returncode == 0, pool.stderr
    assert len(twin.nodes("cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")) == 3

    resized = _gcloud(
        env, "container", "clusters", "resize", "rhaii-tpu-scaleout-cluster", "--node-pool", "tpu-pool",
        "--num-nodes", "5", "--zone", ZONE,
    )  # fmt: skip
    assert resized.returncode == 0, resized.stderr
    assert len(twin.nodes("cloud.google.com/gke-nodepool=tpu-pool")) == 5

    listed = _gcloud(env, "container", "clusters", "list", "--zone", ZONE, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (cluster,) = json.loads(listed.stdout)
    assert cluster["name"] == "rhaii-tpu-scaleout-cluster" and cluster["status"] == "RUNNING"
    assert cluster["currentNodeCount"] == 7
    assert cluster["resourceLabels"] == {"created-by": "rhaii-nb"}

    missing = _gcloud(env, "container", "clusters", "describe", "nope", "--zone", ZONE)
    assert missing.returncode != 0 and "Not found" in missing.stderr


@pytest.mark.timeout(60)
def test_api_flaky_answers_google_shaped_429_and_500_with_retry_after(tmp_path):
    twin = GkeTwin(tmp_path, scenarios=frozenset({"api-flaky"}))
    try:
        url = f"{twin.url}/v1/projects/{PROJECT}/locations/{ZONE}/clusters"
        with httpx.Client() as http:
            answers = [http.get(url) for _ in range(200)]
        failed = [a for a in answers if a.status_code != 200]
        assert failed and len(failed) < 60, f"{len(failed)} of 200 calls failed"
        for answer in failed:
            assert answer.status_code in (429, 500) and answer.headers["Retry-After"] == "1"
            error = answer.json()["error"]
            assert error["status"] == {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}[answer.status_code]
            assert error["code"] == answer.status_code and error["message"]
    finally:
        twin.close()
