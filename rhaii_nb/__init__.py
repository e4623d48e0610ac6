"""rhaii_nb: the helpers behind the RHAII on GKE TPU runbook notebooks."""

__version__ = "0.1.0"
