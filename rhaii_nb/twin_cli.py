"""``rhaii-nb twin up | status | down | install-operators``: run the local twin in the background."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rhaii_nb.twin.home import TwinHome, default_home


def _home_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help=f"twin home directory (default: $RHAII_TWIN_HOME or {default_home()})",
    )


def register(subparsers: Any) -> None:
    """Add the ``twin`` command group."""
    twin = subparsers.add_parser("twin", help="start, inspect or stop the local twin of GKE + RHAII")
    commands = twin.add_subparsers(dest="twin_command", metavar="TWIN_COMMAND")

    def usage(_args: argparse.Namespace) -> int:
        twin.print_help()
        return 2

    twin.set_defaults(handler=usage)

    up = commands.add_parser("up", help="start the twin in the background (or find the running one)")
    _home_argument(up)
    up.add_argument("--cluster", help="create this GKE cluster at once (nodes Ready, Kubernetes API up)")
    up.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplier of simulated durations (0.01 = fast)"
    )
    up.add_argument(
        "--scenario", action="append", default=[], help="failure scenario to switch on (repeatable)"
    )
    up.set_defaults(handler=cmd_up)

    status = commands.add_parser(
        "status", help="print the twin's endpoints and health (exit 1 if not running)"
    )
    _home_argument(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    down = commands.add_parser("down", help="stop the twin")
    _home_argument(down)
    down.set_defaults(handler=cmd_down)

    install = commands.add_parser(
        "install-operators", help="install KServe, Istio and the CRDs into the twin"
    )
    _home_argument(install)
    install.set_defaults(handler=cmd_install_operators)


def _print_endpoints(home: TwinHome, endpoints: dict[str, Any], healthy: dict[str, bool]) -> None:
    print(f"twin running in {home.root} (pid {endpoints.get('pid')}, since {endpoints.get('started_at')})")
    for name in ("kubernetes", "gke", "gateway"):
        url = endpoints.get(name)
        if not url:
            print(f"  {name:<10} (not available)")
            continue
        state = "ok" if healthy.get(name) else "not answering"
        if name == "kubernetes" and not healthy.get(name):
            state += " (no cluster yet?)"
        print(f"  {name:<10} {url}  {state}")
    print(f"  kubeconfig {home.kubeconfig}  (context rhaii-twin)")
    scenarios = ", ".join(endpoints.get("scenarios") or []) or "none"
    print(f"  time scale {endpoints.get('time_scale')}, scenarios: {scenarios}")
    print(f"  log        {home.log_file}")


def cmd_up(args: argparse.Namespace) -> int:
    """Start the twin (idempotent)."""
    from rhaii_nb.twin.client import TwinError, ensure_twin, find_twin

    already = find_twin(args.home) is not None
    try:
        handle = ensure_twin(
            home=args.home, cluster=args.cluster, time_scale=args.time_scale, scenarios=tuple(args.scenario)
        )
    except TwinError as exc:
        print(f"error: {exc}")
        return 1
    from rhaii_nb.twin.client import health

    home = TwinHome.at(handle.home)
    if already:
        print("the twin was already running")
    _print_endpoints(home, handle.endpoints, health(home, handle.endpoints))
    print(f"use it: export KUBECONFIG={home.kubeconfig}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print endpoints and health; 1 when no twin runs."""
    from rhaii_nb.twin.client import find_twin, health

    home = TwinHome.at(args.home)
    handle = find_twin(home.root)
    if handle is None:
        print(f"no twin running in {home.root} (start one: rhaii-nb twin up --home {home.root})")
        return 1
    healthy = health(home, handle.endpoints)
    if args.json:
        print(json.dumps({**handle.endpoints, "health": healthy}, indent=2, sort_keys=True))
    else:
        _print_endpoints(home, handle.endpoints, healthy)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the twin."""
    from rhaii_nb.twin.client import stop_twin

    home = TwinHome.at(args.home)
    if stop_twin(home.root):
        print(f"twin in {home.root} stopped")
    else:
        print(f"no twin was running in {home.root}")
    return 0


def cmd_install_operators(args: argparse.Namespace) -> int:
    """Ask the running twin to install the operators (KServe, Istio, Gateway API CRDs)."""
    import httpx

    from rhaii_nb.twin.client import find_twin

    home = TwinHome.at(args.home)
    handle = find_twin(home.root)
    if handle is None:
        print(f"no twin running in {home.root}: start one first (rhaii-nb twin up --cluster NAME)")
        return 1
    try:
        result = handle.admin("POST", "/twin/v1/install-operators", timeout=120).json()
    except httpx.HTTPStatusError as exc:
        print(f"error: {exc.response.json().get('message', exc.response.text)}")
        return 1
    except httpx.HTTPError as exc:
        print(f"error: the Kubernetes API of the twin does not answer ({exc}); is a cluster up?")
        return 1
    print(f"operators installed: {json.dumps(result.get('installed'))}")
    return 0
