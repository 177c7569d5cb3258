"""router/overrides.py: which override applies to a call; a tenant's persona is that tenant's alone."""

import pytest

from router.context import CallContext
from router.overrides import Override, OverrideTable, Scope, check_subject, tenant_persona
from router.roles import Role

D = Role.DIALOGUE


def test_a_tenants_persona_override_reaches_that_tenant_only():
    table = OverrideTable([
        Override(Scope.TENANT_PERSONA, tenant_persona("acme", "support"), D, "acme-support-model"),
        Override(Scope.TENANT, "acme", D, "acme-model"),
        Override(Scope.TENANT, "globex", D, "globex-model"),
    ])
    assert table.resolve(D, CallContext(tenant="acme", persona="support")).model == "acme-support-model"
    assert table.resolve(D, CallContext(tenant="acme", persona="sales")).model == "acme-model"
    # another tenant's persona of the same name gets its own tenant's choice, never acme's persona
    assert table.resolve(D, CallContext(tenant="globex", persona="support")).model == "globex-model"
    assert table.resolve(D, CallContext(tenant="initech", persona="support")) is None
    assert table.resolve(Role.SUMMARY, CallContext(tenant="acme", persona="support")) is None


def test_precedence_tenant_persona_then_persona_of_every_tenant_then_tenant():
    table = OverrideTable([
        Override(Scope.PERSONA, "support", D, "platform-support"),
        Override(Scope.TENANT, "acme", D, "acme-model"),
    ])
    assert table.resolve(D, CallContext(tenant="acme", persona="support")).model == "platform-support"
    table.put(Override(Scope.TENANT_PERSONA, "acme/support", D, "acme-support"))
    assert table.resolve(D, CallContext(tenant="acme", persona="support")).model == "acme-support"
    assert table.resolve(D, CallContext(tenant="globex", persona="support")).model == "platform-support"


@pytest.mark.parametrize("scope,subject", [(Scope.TENANT_PERSONA, "acme"), (Scope.TENANT_PERSONA, "/support"),
                                           (Scope.TENANT_PERSONA, "acme/"), (Scope.TENANT, "a/b"),
                                           (Scope.PERSONA, "")])
def test_a_subject_that_does_not_fit_its_scope_is_refused(scope, subject):
    with pytest.raises(ValueError):
        check_subject(scope, subject)
