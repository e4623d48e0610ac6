"""The twin's vLLM stand-in: tokenizer, prefix cache, engine, profiles and the replica server."""

from rhaii_nb.twin.inference.profiles import CPU_TEST, PROFILES, TPU_V6E_QWEN25_3B, Profile, get_profile
from rhaii_nb.twin.inference.server import ReplicaServer, create_replica_app

__all__ = [
    "CPU_TEST",
    "PROFILES",
    "TPU_V6E_QWEN25_3B",
    "Profile",
    "ReplicaServer",
    "create_replica_app",
    "get_profile",
]
