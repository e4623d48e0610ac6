"""The twin's inference gateway: Istio ingress + the guide's EnvoyFilters + an EPP-style scheduler.

Modules: ``prefix_index`` (the EPP's approximate prefix index), ``scorers`` and ``scheduler``
(weighted scoring and pickers, usable as a library), ``loads`` (metrics scraping), ``routing``
(HTTPRoute matching and whether the EPP is in the path), ``netpol`` (NetworkPolicy evaluation) and
``server`` (``create_app(ctx)``).
"""
