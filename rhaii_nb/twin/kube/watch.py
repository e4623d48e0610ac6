"""Watch streams: chunked JSON lines ``{"type": ..., "object": ...}`` from ``store.watch``.

An expired ``resourceVersion`` is answered as the real server does: HTTP 200 and a single ERROR
event carrying a 410 ``Status``. The store's iterator is drained by a pump task into a queue so
that waiting for the next event can time out (for ``timeoutSeconds`` and noticing a client that
left) without cancelling the iterator itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube.responses import dumps
from rhaii_nb.twin.kube.tables import to_table
from rhaii_nb.twin.resources import ResourceType

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 1800  # the real server picks 30-60 min when the client sets none
BOOKMARK_INTERVAL_SECONDS = 10.0
IDLE_CHECK_SECONDS = 2.0  # how often an idle stream checks whether its client is still there
_END = object()


def _event_line(event_type: str, obj: dict[str, Any]) -> bytes:
    return (dumps({"type": event_type, "object": obj}) + "\n").encode()


def _event_parts(event: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(event, dict):
        return event["type"], event["object"]
    if isinstance(event, tuple):
        return event[0], event[1]
    return event.type, event.object


async def _pump(iterator: Any, queue: asyncio.Queue) -> None:
    try:
        async for event in iterator:
            await queue.put(event)
    except ApiError as error:
        await queue.put(error)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # report the failure in-band, as the server does with an ERROR event
        log.exception("watch stream failed")
        await queue.put(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))
    finally:
        await queue.put(_END)


async def serve_watch(
    request: web.Request,
    store: Any,
    rt: ResourceType,
    *,
    namespace: str | None,
    resource_version: str | None,
    label_selector: str | None,
    field_selector: str | None,
    timeout_seconds: int | None,
    bookmarks: bool,
    table_policy: str | None,
) -> web.StreamResponse:
    """Stream watch events until the timeout, the client leaving, or an ERROR event."""
    try:
        iterator = store.watch(
            rt,
            namespace=namespace,
            resource_version=resource_version or None,
            label_selector=label_selector or None,
            field_selector=field_selector or None,
            bookmark_interval=BOOKMARK_INTERVAL_SECONDS if bookmarks else None,
        )
    except ApiError as error:
        if error.code != 410:
            raise
        iterator, first_error = None, error
    else:
        first_error = None

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    if first_error is not None:
        await response.write(_event_line("ERROR", first_error.to_status()))
        await response.write_eof()
        return response

    queue: asyncio.Queue = asyncio.Queue()
    pump = asyncio.create_task(_pump(iterator, queue))
    deadline = time.monotonic() + (timeout_seconds if timeout_seconds else DEFAULT_TIMEOUT_SECONDS)
    last_rv = resource_version if resource_version not in (None, "", "0") else None
    sent_columns = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or request.transport is None or request.transport.is_closing():
                break
            try:
                item = await asyncio.wait_for(queue.get(), min(remaining, IDLE_CHECK_SECONDS))
            except TimeoutError:
                continue  # (bookmarks come from the store's watch when asked for)
            if item is _END:
                break
            if isinstance(item, ApiError):
                await response.write(_event_line("ERROR", item.to_status()))
                break
            event_type, obj = _event_parts(item)
            last_rv = (obj.get("metadata") or {}).get("resourceVersion") or last_rv
            if event_type == "BOOKMARK" and not bookmarks:
                continue
            if table_policy is not None and event_type != "BOOKMARK":
                table = to_table(rt, [obj], {"resourceVersion": last_rv or ""}, table_policy)
                if sent_columns:
                    table["columnDefinitions"] = []
                sent_columns = True
                obj = table
            await response.write(_event_line(event_type, obj))
    except ConnectionResetError:
        pass  # the client went away
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response
