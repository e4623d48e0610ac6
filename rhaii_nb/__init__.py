"""rhaii_nb: the helpers behind the RHAII on GKE TPU runbook notebooks.

What a notebook cell calls::

    from rhaii_nb import connect, load_params
    params = load_params(params_file, overrides)
    session = connect(params)          # GKE or the twin, chosen once here
    preflight.run(session, params)     # from rhaii_nb import preflight, cluster, pods, logs, probes, service

Names are imported lazily, so ``import rhaii_nb`` (and the twin daemon, which lives inside the
package) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from rhaii_nb import lean_imports  # noqa: F401  (first: keeps jsonschema's slow optional import out)

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "rhaii_nb.session",
    "Session": "rhaii_nb.session",
    "ClusterNotReady": "rhaii_nb.session",
    "load_params": "rhaii_nb.params",
    "RunParams": "rhaii_nb.params",
    "WaitTimeout": "rhaii_nb.pods",
    "require": "rhaii_nb.phases",
    "PhaseNotDone": "rhaii_nb.phases",
}
_MODULES = ("cluster", "logs", "pods", "preflight", "probes", "service", "retry")

__all__ = ["__version__", *_EXPORTS, *_MODULES]


def __getattr__(name: str) -> Any:
    """Import a public name or helper module on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"rhaii_nb.{name}")
    raise AttributeError(f"module 'rhaii_nb' has no attribute {name!r}")
