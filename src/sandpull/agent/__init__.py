"""The in-sandbox agent: the Agent ttrpc service over an image store and runc.

:class:`AgentService` implements ``sandpull.agent.v1.Agent``; :func:`serve`
runs it on a unix socket; :class:`AgentClient` calls it.
"""

from sandpull.agent.accounting import PullAccounting
from sandpull.agent.client import AgentClient
from sandpull.agent.images import ImageStore
from sandpull.agent.serve import serve
from sandpull.agent.service import SERVICE, AgentService

__all__ = [
    "SERVICE",
    "AgentClient",
    "AgentService",
    "ImageStore",
    "PullAccounting",
    "serve",
]
