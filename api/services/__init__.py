"""What a route calls beyond ``store/`` queries: the only place in ``api/`` a request reaches Prefect,
blocks, flows or tasks (credentials in block documents, deployments and flow runs, registry and sink
clients). Routes stay HTTP: parse, call one service function, map the answer.
"""
