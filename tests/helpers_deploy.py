"""A private twin with the whole runbook deployed through the helpers (the calls the notebooks 01–07
make, without a kernel per notebook): for the operations, diagnose and training tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TIME_SCALE = 0.002
EXT_PROC_ENVOYFILTER = "inference-pool-ext-proc-tpu-fix"  # the guide's ext_proc fix for TPU pods


def deploy(home: Path, **overrides: Any) -> tuple[Any, Any]:
    """(session, params): cluster, namespace + secrets, operators, service Ready, EPP sidecar,
    EnvoyFilters, NetworkPolicies — on a twin in ``home``."""
    from rhaii_nb import apply, cluster, manifests, network_policies, operators, routing, service
    from rhaii_nb.params import load_params
    from rhaii_nb.session import connect

    params = load_params(
        REPO / "params" / "ci.yaml", {"twin_home": str(home), "time_scale": TIME_SCALE, **overrides}
    )
    session = connect(params)
    cluster.create(session, params, show=False)
    apply.apply_objects(session, manifests.manifests_for(params, "namespace"), show=False)
    apply.apply_objects(session, manifests.secrets_set(params), show=False)
    operators.install(session, params)
    operators.wait_ready(session, params, show=False)
    apply.apply_objects(session, manifests.manifests_for(params, "inference-service"), show=False)
    service.wait_ready(session, params, show=False)
    routing.enable_epp_sidecar(session, params, show=False)
    routing.apply_envoyfilters(session, params, show=False)
    network_policies.apply(session, params, show=False)
    return session, params


def deployed_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """Body of a module fixture: deploy on a fresh twin, stop it afterwards."""
    from rhaii_nb.session import forget_sessions

    home = tmp_path_factory.mktemp("twin")
    session, params = deploy(home)
    try:
        yield session, params
    finally:
        twin = session.twin
        forget_sessions()
        twin.stop()


def delete_ext_proc_envoyfilter(session: Any) -> None:
    """Delete the guide's ext_proc EnvoyFilter: the ``missing-envoyfilter`` troubleshooting case."""
    from rhaii_nb import names

    session.custom.delete_namespaced_custom_object(
        "networking.istio.io", "v1alpha3", names.GATEWAY_NAMESPACE, "envoyfilters", EXT_PROC_ENVOYFILTER
    )
