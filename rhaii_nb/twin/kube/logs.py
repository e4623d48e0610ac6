"""``GET pods/<name>/log``: container logs from ``ctx.logs`` with the kubelet's parameters and errors.

Parameters: ``container``, ``follow``, ``tailLines``, ``sinceSeconds``, ``sinceTime``,
``timestamps``, ``previous``, ``limitBytes``. Errors are worded as the API server and kubelet word
them (400 ``a container name must be specified for pod X, choose one of: [a b]``, ``container "c"
in pod "p" is waiting to start: PodInitializing``...). Bodies are ``text/plain``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube.paths import RequestInfo
from rhaii_nb.twin.kube.responses import bad_request
from rhaii_nb.twin.resources import ResourceType

TEXT_PLAIN = "text/plain"


def _int(query: Any, name: str, minimum: int) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{value}": must be an integer') from None
    if number < minimum:
        raise ApiError(
            422,
            "Invalid",
            f'PodLogOptions "" is invalid: {name}: Invalid value: {number}: '
            f"must be greater than {minimum - 1}",
        )
    return number


def choose_container(pod: dict[str, Any], container: str | None) -> str:
    """The container a log request addresses, with the API server's errors when ambiguous or unknown."""
    spec = pod.get("spec") or {}
    name = (pod.get("metadata") or {}).get("name", "")
    containers = [c.get("name") for c in spec.get("containers") or []]
    init_containers = [c.get("name") for c in spec.get("initContainers") or []]
    ephemeral = [c.get("name") for c in spec.get("ephemeralContainers") or []]
    if not container:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise bad_request(f"the pod {name} does not have a pod")
        message = (
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        )
        if init_containers:
            message += f" or one of the init containers: [{' '.join(init_containers)}]"
        if ephemeral:
            message += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
        raise bad_request(message)
    if container not in containers + init_containers + ephemeral:
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


def check_container_state(ctx: Any, pod: dict[str, Any], container: str, previous: bool) -> bool:
    """Apply the kubelet's ``validateContainerLogStatus``; returns False when there is nothing to read yet
    (an unscheduled pod answers an empty body)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    logs = ctx.logs
    if previous:
        if logs is not None and logs.has_previous(namespace, name, container):
            return True
        raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    if logs is not None and logs.has_logs(namespace, name, container):
        return True
    statuses = (
        (status.get("containerStatuses") or [])
        + (status.get("initContainerStatuses") or [])
        + (status.get("ephemeralContainerStatuses") or [])
    )
    found = next((s for s in statuses if s.get("name") == container), None)
    if found is None:
        if not (pod.get("spec") or {}).get("nodeName"):
            return False
        raise bad_request(f'container "{container}" in pod "{name}" is not available')
    state = found.get("state") or {}
    last_terminated = (found.get("lastState") or {}).get("terminated")
    if state.get("running") is not None or state.get("terminated") is not None or last_terminated:
        return True
    waiting = state.get("waiting")
    if waiting is not None:
        reason = waiting.get("reason") or ""
        if reason == "ErrImagePull":
            detail = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            detail = "trying and failing to pull image"
        else:
            detail = reason
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {detail}')
    raise bad_request(f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


def _container_terminated(pod: dict[str, Any], container: str) -> bool:
    status = pod.get("status") or {}
    for item in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if item.get("name") == container:
            return (item.get("state") or {}).get("terminated") is not None
    return False


async def serve_log(
    ctx: Any, request: web.Request, rt: ResourceType, info: RequestInfo
) -> web.StreamResponse:
    """Answer a pods/log request, streaming with ``follow=true``."""
    query = request.query
    store = ctx.store
    pod = store.get(rt, info.name, namespace=info.namespace)
    container = choose_container(pod, query.get("container"))
    previous = (query.get("previous") or "").lower() in ("1", "true")
    follow = (query.get("follow") or "").lower() in ("1", "true") and not previous
    timestamps = (query.get("timestamps") or "").lower() in ("1", "true")
    tail_lines = _int(query, "tailLines", 0)
    limit_bytes = _int(query, "limitBytes", 1)
    since_seconds: float | None = _int(query, "sinceSeconds", 1)
    if query.get("sinceTime"):
        if since_seconds is not None:
            raise ApiError(
                422,
                "Invalid",
                'PodLogOptions "" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` '
                "may be specified",
            )
        try:
            since = dt.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f'sinceTime: Invalid value: "{query["sinceTime"]}": must be RFC3339') from None
        since_seconds = max(0.0, (dt.datetime.now(dt.UTC) - since).total_seconds())
    has_content = check_container_state(ctx, pod, container, previous)
    namespace = info.namespace or ""
    logs = ctx.logs

    if not follow or not has_content or logs is None:
        lines = []
        if has_content and logs is not None:
            lines = logs.read(
                namespace, info.name, container, tail_lines, since_seconds, timestamps, previous=previous
            )
        text = "".join(line + "\n" for line in lines)
        body = text.encode()
        if limit_bytes is not None:
            body = body[:limit_bytes]
        return web.Response(body=body, content_type=TEXT_PLAIN, charset="utf-8")

    response = web.StreamResponse(status=200)
    response.content_type = TEXT_PLAIN
    response.charset = "utf-8"
    response.enable_chunked_encoding()
    await response.prepare(request)
    pod_uid = (pod.get("metadata") or {}).get("uid")

    def stop() -> bool:
        if request.transport is None or request.transport.is_closing():
            return True
        try:
            current = store.get(rt, info.name, namespace=info.namespace)
        except ApiError:
            return True
        if (current.get("metadata") or {}).get("uid") != pod_uid:
            return True
        return _container_terminated(current, container)

    written = 0
    with contextlib.suppress(ConnectionResetError):
        async for line in logs.follow(
            namespace, info.name, container, tail_lines, since_seconds, timestamps, stop=stop
        ):
            chunk = (line + "\n").encode()
            if limit_bytes is not None and written + len(chunk) > limit_bytes:
                await response.write(chunk[: limit_bytes - written])
                break
            await response.write(chunk)
            written += len(chunk)
        await response.write_eof()
    return response
