"""A database owner rewrites the whole trail consistently (events, stream heads and seals all
recomputed): the chains alone cannot notice, a head published before can. The head of each day is
on a public page and in the national export (issue 18, item 13)."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from instrumentshare.audit import services
from tests.audit.test_audit_chain import _write, tamper

pytestmark = pytest.mark.django_db


def _rewrite_everything():
    """Delete every event, seal and stream head, then write a different history through the
    application's own code, so every hash in the database is consistent again."""
    tamper("DELETE FROM audit_auditseal")
    tamper("DELETE FROM audit_auditevent")
    tamper("DELETE FROM audit_auditstream")
    for stream in range(3):
        for step in range(3):
            services.record(actor=None, action="thing.changed", target=("thing", stream),
                            before={"step": step}, after={"step": step + 1, "note": "rewritten"})
    services.seal_pending()


def test_a_full_rewrite_passes_the_chains_but_not_the_published_head():
    _write()
    services.seal_pending()
    published = services.seal_head()["hash"]
    call_command("verify_audit", expect_head=[published])  # whole, and through the published head
    _rewrite_everything()
    assert services.verify() is None  # the chains alone see nothing wrong
    call_command("verify_audit")
    with pytest.raises(CommandError) as error:
        call_command("verify_audit", expect_head=[published])
    assert "not in the seal chain" in str(error.value)


def test_a_later_head_still_passes_through_an_earlier_one():
    _write()
    services.seal_pending()
    earlier = services.seal_head()["hash"]
    _write(n_streams=1, per_stream=2)
    services.seal_pending()
    call_command("verify_audit", expect_head=[earlier, services.seal_head()["hash"]])


def test_the_public_page_shows_each_days_head():
    _write()
    services.seal_pending()
    head = services.seal_head()
    response = Client().get("/audit/heads/")
    assert response.status_code == 200
    assert head["hash"] in response.content.decode()


def test_the_national_export_carries_the_head(world):
    from oversight.national import build_payload

    _write()
    services.seal_pending()
    payload = build_payload(organization=world.org_a, year=2026, quarter=3,
                            now=dt.datetime(2026, 10, 2, tzinfo=dt.UTC))
    assert payload["audit_head"]["hash"] == services.seal_head()["hash"]
