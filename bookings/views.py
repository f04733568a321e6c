from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404

from catalog.models import Instrument

from . import feeds

CALENDAR = "text/calendar; charset=utf-8"


def private_feed(request, token: str):
    body = feeds.private_feed(token)
    if body is None:
        raise Http404("No such feed.")
    response = HttpResponse(body, content_type=CALENDAR)
    response["Cache-Control"] = "private, max-age=300"
    return response


def instrument_feed(request, instrument_id: int):
    instrument = get_object_or_404(Instrument, pk=instrument_id, listing_state=Instrument.ListingState.PUBLISHED)
    response = HttpResponse(feeds.public_instrument_feed(instrument), content_type=CALENDAR)
    response["Cache-Control"] = "public, max-age=300"
    return response
