"""Input schemas of the API."""

from __future__ import annotations

import datetime as dt
import decimal
import types
import typing
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, ValidationInfo, field_validator

from .time import bounded_date, bounded_datetime


class StrictSchema(Schema):
    """An input body that names every field a caller may set and refuses the rest with a 422.

    A field the caller may not set (the owner, a price, a state, an organization) is then never
    silently dropped either: the client learns at once that it has no effect.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads ``true`` as 1 where a number is expected (an id, a count) and 0 as false where a
        yes/no is; a client that sends one for the other has made a mistake, and the answer is a 422
        naming the field, not a guess. (Text such as ``"true"`` stays readable: query strings are text.)"""
        annotation = cls.model_fields[info.field_name].annotation
        if _holds(value, bool) and _wants(annotation, (int, float, decimal.Decimal)):
            raise ValueError("a number is expected, not true or false")
        if _holds(value, int | float) and not _holds(value, bool) and _wants(annotation, (bool,)) \
                and not _wants(annotation, (int, float, decimal.Decimal)):
            raise ValueError("true or false is expected, not a number")
        return value


def _holds(value: Any, kind) -> bool:
    return isinstance(value, kind) or (isinstance(value, list) and any(isinstance(item, kind) for item in value))


def _wants(annotation: Any, kinds: tuple) -> bool:
    """Whether the field's type is one of ``kinds`` (or a list or optional of one)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _wants(typing.get_args(annotation)[0], kinds)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return any(_wants(argument, kinds) for argument in typing.get_args(annotation))
    return annotation in kinds


def _text_or_date(value: Any) -> Any:
    """A date or a moment arrives as ISO 8601 text; a number (which pydantic would read as seconds
    since 1970) is refused."""
    if isinstance(value, bool | int | float):
        raise ValueError("must be ISO 8601 text, e.g. 2026-12-01 or 2026-12-01T09:00:00+08:00")
    return value


# The bounded time types (see ``core.time``): every datetime and date a client may send is one of
# these, so a year 1 or 9999 is a 422 naming the field; tests/architecture holds every input to it.
BoundedDateTime = Annotated[dt.datetime, BeforeValidator(_text_or_date), AfterValidator(bounded_datetime)]
BoundedDate = Annotated[dt.date, BeforeValidator(_text_or_date), AfterValidator(bounded_date)]
