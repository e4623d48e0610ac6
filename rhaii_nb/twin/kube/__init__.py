"""The twin's Kubernetes REST API: aiohttp handlers over the ``Store`` (``create_app(ctx)`` in ``server``)."""
