"""Cluster lifecycle against the twin's GKE API: create, adopt, mismatch, resize, guarded delete, gke path.

The tests of this module run in order on one private twin (module fixture): the cluster made by
the first is what the next ones adopt, resize and delete.
"""

from __future__ import annotations

import helpers_session
import pytest
from google.cloud import container_v1
from google.oauth2.credentials import Credentials

from rhaii_nb import cluster
from rhaii_nb.session import ClusterNotReady, connect

twin_session = helpers_session.twin_session


def _tpu_nodes(session, params) -> list[str]:
    answer = session.core.list_node(label_selector=f"cloud.google.com/gke-nodepool={params.node_pool}")
    return sorted(n.metadata.name for n in answer.items)


@pytest.mark.timeout(120)
def test_no_kubernetes_client_before_the_cluster_exists(twin_session) -> None:
    session, _ = twin_session
    assert session.get_cluster() is None
    with pytest.raises(ClusterNotReady, match=r"does not exist yet\. Fix: create it first"):
        session.core.list_node()


@pytest.mark.timeout(180)
def test_create_makes_cluster_and_tpu_pool_then_adopts_them(twin_session) -> None:
    session, params = twin_session
    record = cluster.create(session, params, show=False)
    assert [(s.step, s.action) for s in record.steps] == [("cluster", "created"), ("node pool", "created")]
    made = session.get_cluster()
    assert made.resource_labels["created-by"] == "rhaii-nb"
    assert made.network_config.datapath_provider == container_v1.DatapathProvider.ADVANCED_DATAPATH
    pool = cluster.get_node_pool(session, params)
    assert pool.config.machine_type == "ct6e-standard-4t" and pool.placement_policy.tpu_topology == "2x2"
    nodes = session.core.list_node(label_selector="cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice").items
    assert len(nodes) == 3 and record.steps[1].node_count == 3
    assert {n.metadata.labels["cloud.google.com/gke-tpu-topology"] for n in nodes} == {"2x2"}

    again = cluster.create(session, params, show=False)
    assert [s.action for s in again.steps] == ["adopted", "adopted"]
    assert again.differences == []
    assert list(again.table.columns) == ["step", "target", "action", "seconds", "node_count", "notes"]


@pytest.mark.timeout(120)
def test_mismatching_pool_is_reported_not_adopted(twin_session) -> None:
    session, params = twin_session
    other = params.model_copy(update={"machine_type": "ct6e-standard-8t", "tpu_topology": "2x4"})
    with pytest.raises(cluster.ClusterMismatch) as info:
        cluster.create(session, other, show=False)
    assert "machine type ct6e-standard-4t (params: ct6e-standard-8t)" in str(info.value)
    assert "TPU topology 2x2 (params: 2x4)" in str(info.value)


@pytest.mark.timeout(180)
def test_resize_to_zero_and_back(twin_session) -> None:
    session, params = twin_session
    step = cluster.resize(session, params, 0, show=False)
    assert step.action == "resized" and step.node_count == 0
    assert _tpu_nodes(session, params) == []
    cluster.resize(session, params, 3, show=False)
    assert len(_tpu_nodes(session, params)) == 3
    with pytest.raises(ValueError, match="≥ 0"):
        cluster.resize(session, params, -1, show=False)


@pytest.mark.timeout(120)
def test_gke_path_reaches_the_same_cluster_through_the_same_code(twin_session) -> None:
    session, params = twin_session
    token = session.kube_token()
    gke_params = params.model_copy(
        update={"target": "gke", "gke_api_endpoint": session.twin.endpoints["gke"]}
    )
    gke_session = connect(gke_params, credentials=Credentials(token=token))
    assert gke_session is not session and gke_session.target == "gke"
    assert gke_session.get_cluster().name == params.cluster_name
    assert _tpu_nodes(gke_session, params) == _tpu_nodes(session, params)
    assert connect(gke_params, credentials=gke_session.gcp.credentials) is gke_session  # re-entrant
    kubeconfig = gke_session.write_kubeconfig(session.state_dir / "user-kubeconfig")
    assert kubeconfig.stat().st_mode & 0o077 == 0, "a kubeconfig with a token must be private"


@pytest.mark.timeout(180)
def test_delete_needs_confirmation_and_only_removes_what_the_runbook_made(twin_session) -> None:
    session, params = twin_session
    with pytest.raises(cluster.NotConfirmed, match="confirm=True"):
        cluster.delete(session, params)
    assert session.get_cluster() is not None
    step = cluster.delete(session, params, confirm=True, show=False)
    assert step.action == "deleted" and session.get_cluster() is None
    assert cluster.delete(session, params, confirm=True, show=False).action == "absent"
    hours = cluster.node_hours(session)
    assert hours["node_hours"] > 0 and hours["chip_hours"] == pytest.approx(hours["node_hours"] * 4, abs=1e-3)

    # A cluster someone else made (no created-by label) is never deleted.
    spec = cluster.cluster_spec(params)
    spec.resource_labels = {}
    spec.network_config = container_v1.NetworkConfig()  # legacy datapath: NetworkPolicy not enforced
    op = session.gke.create_cluster(parent=session.location_path, cluster=spec)
    cluster.wait_operation(session, op, "creating a foreign cluster", 60, show=False)
    with pytest.raises(cluster.ClusterMismatch, match="not labelled created-by=rhaii-nb"):
        cluster.delete(session, params, confirm=True)
    _, info = cluster.cluster_differences(session.get_cluster(), params)
    assert any("did not create it" in note for note in info)


@pytest.mark.timeout(120)
def test_unenforced_network_policy_cluster_is_a_mismatch(twin_session) -> None:
    session, params = twin_session
    existing = session.get_cluster()  # the foreign cluster of the previous test: legacy datapath
    assert existing.network_config.datapath_provider != container_v1.DatapathProvider.ADVANCED_DATAPATH
    with pytest.raises(cluster.ClusterMismatch, match="policies would silently do nothing"):
        cluster.create(session, params, show=False)


def test_node_hours_integrates_pool_sizes() -> None:
    entries = [
        {"t": 0, "node_count": 3, "chips_per_node": 4},
        {"t": 3600, "node_count": 0, "chips_per_node": 4},
        {"t": 7200, "node_count": 1, "chips_per_node": 4},
    ]
    assert cluster.node_hours(None, until=9000, entries=entries) == {"node_hours": 3.5, "chip_hours": 14.0}
