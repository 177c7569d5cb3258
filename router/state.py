"""The live routing configuration: mode, per-mode profiles, overrides, persona SLAs, the auto flag.

One object, read on every selection and changed only by the admin operations (or a reload after
another process changed the store). `version` moves on every change so sticky conversation choices
made under an older configuration are re-decided: live sessions pick up new profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.modes import DeploymentMode, ModePolicy, RoleTimeouts
from router.overrides import OverrideTable
from router.personas import PersonaSLA
from router.profiles import ModelProfile, ProfileSet
from router.quality import QualityBook
from router.roles import Role


@dataclass
class RoutingState:
    policies: dict[DeploymentMode, ModePolicy]
    mode: DeploymentMode
    auto_selection: bool = False
    custom_profiles: dict[DeploymentMode, dict[Role, ModelProfile]] = field(default_factory=dict)
    overrides: OverrideTable = field(default_factory=OverrideTable)
    personas: dict[str, PersonaSLA] = field(default_factory=dict)
    version: int = 0
    # quality measured by benchmark capsules and moved by production feedback (router/quality.py): it replaces
    # the catalogue's prior in the scores
    quality: QualityBook = field(default_factory=QualityBook)

    def __post_init__(self) -> None:
        if self.mode not in self.policies:
            raise ValueError(f"no policy for mode {self.mode.value!r}")

    @property
    def policy(self) -> ModePolicy:
        return self.policies[self.mode]

    def default_profile(self, role: Role, mode: DeploymentMode | None = None) -> ModelProfile:
        return self.policies[mode or self.mode].profiles.get(role)

    def profile(self, role: Role, mode: DeploymentMode | None = None) -> ModelProfile:
        """The role's profile in the mode: the operator's stored one, else the mode default."""
        mode = mode or self.mode
        custom = self.custom_profiles.get(mode, {}).get(role)
        return custom if custom is not None else self.policies[mode].profiles.get(role)

    def profile_set(self, mode: DeploymentMode | None = None) -> ProfileSet:
        mode = mode or self.mode
        return ProfileSet({role: self.profile(role, mode) for role in self.policies[mode].profiles.roles()})

    def timeouts(self, role: Role) -> RoleTimeouts:
        return self.policy.timeouts_for(role, self.profile(role))

    def persona(self, name: str | None) -> PersonaSLA | None:
        return None if name is None else self.personas.get(name)
