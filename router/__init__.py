"""The SLM router: role-based profiles, selection, failover and events. Never imports voice/."""

from router.context import CallContext
from router.events import Event, EventBus
from router.roles import Role
from router.router import AllCandidatesFailed, ModelRouter

__all__ = ["AllCandidatesFailed", "CallContext", "Event", "EventBus", "ModelRouter", "Role"]
