import pytest
from django.core.management import call_command

from instrumentshare.audit.services import verify
from submissions.models import SampleRequest


@pytest.mark.django_db
def test_the_demo_has_sample_mode_instruments_with_requests_in_every_state():
    call_command("seed_demo")
    count = SampleRequest.objects.count()
    assert {state for state, _label in SampleRequest.State.choices} == set(
        SampleRequest.objects.values_list("state", flat=True))
    assert set(SampleRequest.objects.values_list("instrument__policy__mode", flat=True)) == {"samples"}
    call_command("seed_demo")
    assert SampleRequest.objects.count() == count
    assert verify() is None
