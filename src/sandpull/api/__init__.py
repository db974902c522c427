"""Protocol buffers of sandpull's wire APIs and the modules generated from them.

``ttrpc.proto`` holds the ttrpc envelope; ``agent.proto`` the agent API
(``sandpull.agent.v1``). Regenerate the ``_pb2`` modules with ``make protos``.
"""
