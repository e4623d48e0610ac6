"""The twin's GKE: container v1 REST API, TPU v6e node pools and their Nodes, quota and IAM.

``server.create_app(ctx)`` serves the APIs (contract in ``server.py``'s docstring);
``cluster.precreate(ctx, name)`` makes the guide's cluster at once.
"""
