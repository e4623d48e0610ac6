"""Save and load the store as JSON so a restarted twin keeps its objects."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def save(store: Any, path: str | Path) -> Path:
    """Write every object (CRDs first) and the resourceVersion counter to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"format": "rhaii-twin-snapshot/1", **store.dump()}, fh, separators=(",", ":"))
    os.replace(tmp, path)
    return path


def load(store: Any, path: str | Path) -> bool:
    """Replace the store's content by the snapshot at ``path``; False when there is none.

    A file that is not a snapshot raises ValueError naming the path.
    """
    path = Path(path)
    if not path.exists():
        return False
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not a twin snapshot (invalid JSON: {exc}); delete it to start empty"
        ) from None
    if data.get("format") != "rhaii-twin-snapshot/1":
        raise ValueError(
            f"{path} is not a twin snapshot (format {data.get('format')!r}); delete it to start empty"
        )
    store.restore(data)
    return True
