"""Input schemas of the API."""

from __future__ import annotations

from ninja import Schema
from pydantic import ConfigDict


class StrictSchema(Schema):
    """An input body that names every field a caller may set and refuses the rest with a 422.

    A field the caller may not set (the owner, a price, a state, an organization) is then never
    silently dropped either: the client learns at once that it has no effect.
    """

    model_config = ConfigDict(extra="forbid")
