"""Headless Chromium for the report tests: the DOM after scripts ran, and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=5000",
]


def chromium() -> str | None:
    """The chromium binary, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_dom(page: Path, timeout: float = 120) -> str:
    """The page's DOM after its scripts ran (``--dump-dom``), loaded from ``file://`` with no network."""
    done = subprocess.run(
        [chromium() or "chromium", *FLAGS, "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"chromium failed on {page}: {done.stderr[-2000:]}"
    return done.stdout


def screenshot(page: Path, target: Path, timeout: float = 120) -> Path:
    """A PNG of the page (1200 x 3000 px)."""
    done = subprocess.run(
        [
            chromium() or "chromium",
            *FLAGS,
            "--window-size=1200,3000",
            f"--screenshot={target}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0 and target.exists(), f"chromium screenshot failed: {done.stderr[-2000:]}"
    return target
