"""The in-sandbox agent: the Agent ttrpc service over an image store and runc.

:class:`AgentService` implements ``sandpull.agent.v1.Agent``; :func:`serve`
runs it on a unix socket; :class:`AgentClient` calls it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Where each public name lives: the package imports its modules only when a
# name is first used, so that the CLI starts without the agent's image and
# container code.
_HOME = {
    "AgentClient": "sandpull.agent.client",
    "AgentService": "sandpull.agent.service",
    "ImageStore": "sandpull.agent.images",
    "PullAccounting": "sandpull.agent.accounting",
    "SERVICE": "sandpull.agent.service",
    "serve": "sandpull.agent.serve",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    # Cache it, and win over a submodule of the same name (``agent.serve``), which
    # the import above has just set as an attribute of this package.
    globals()[name] = value
    return value
