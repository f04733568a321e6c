import pytest

from instrumentshare.audit.models import AuditSeal
from instrumentshare.audit.services import record
from portal.embedded_beat import EmbeddedBeat


@pytest.mark.django_db(transaction=True)
def test_the_embedded_beat_runs_the_configured_periodic_jobs():
    record(actor=None, action="thing.created", target=("thing", 1))
    beat = EmbeddedBeat()
    assert "audit-seal" in beat.entries
    ran = beat.run_due()
    assert "audit-seal" in ran
    assert AuditSeal.objects.count() == 1
    # not due again right away
    assert "audit-seal" not in beat.run_due()
