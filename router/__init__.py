"""The SLM router: role-based profiles, scoring, selection, failover, overrides and events. Never imports voice/."""

from router.context import CallContext
from router.events import Event, EventBus, Topic
from router.failover import AllCandidatesFailed, StreamInterrupted
from router.roles import Role
from router.router import ModelRouter

__all__ = [
    "AllCandidatesFailed",
    "CallContext",
    "Event",
    "EventBus",
    "ModelRouter",
    "Role",
    "StreamInterrupted",
    "Topic",
]
