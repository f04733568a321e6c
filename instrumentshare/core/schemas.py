"""Input schemas of the API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from ninja import Schema
from pydantic import AfterValidator, ConfigDict

from .time import bounded_date, bounded_datetime


class StrictSchema(Schema):
    """An input body that names every field a caller may set and refuses the rest with a 422.

    A field the caller may not set (the owner, a price, a state, an organization) is then never
    silently dropped either: the client learns at once that it has no effect.
    """

    model_config = ConfigDict(extra="forbid")


# The bounded time types (see ``core.time``): every datetime and date a client may send is one of
# these, so a year 1 or 9999 is a 422 naming the field; tests/architecture holds every input to it.
BoundedDateTime = Annotated[dt.datetime, AfterValidator(bounded_datetime)]
BoundedDate = Annotated[dt.date, AfterValidator(bounded_date)]
