"""The local twin of GKE + a cluster + RHAII, speaking the real wire protocols."""
