"""Input schemas of the API."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import types
import typing
from typing import Annotated, Any

from ninja import Schema
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .time import bounded_date, bounded_datetime


class StrictSchema(Schema):
    """An input body that names every field a caller may set and refuses the rest with a 422.

    A field the caller may not set (the owner, a price, a state, an organization) is then never
    silently dropped either: the client learns at once that it has no effect.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _run_root_validator(cls, values: Any, handler: ModelWrapValidatorHandler, info: ValidationInfo) -> Any:
        """A body or a query arrives as a dict: validated once, as it is. ninja's own wrapper (replaced
        here, by name) validates a schema that forbids extra fields twice, the second time through the
        ``DjangoGetter`` it makes for model instances; anything else still goes its way."""
        if isinstance(values, dict):
            return handler(values)
        return super()._run_root_validator(values, handler, info)

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


# --- decimal inputs: money and percentages -----------------------------------------------------


def _decimal_pattern(whole_digits: int, *, negative: bool, positive: bool, at_most_100: bool) -> str:
    """The decimal strings a field takes, in canonical form, two places at most."""
    places = r"(\.\d{1,2})?"
    nonzero_fraction = r"0\.(\d[1-9]|[1-9]\d?)"
    if at_most_100:
        whole = r"100(\.00?)?|[1-9]\d?" + places if positive else r"100(\.00?)?|[1-9]?\d" + places
    elif positive:
        whole = rf"[1-9]\d{{0,{whole_digits - 1}}}" + places
    else:
        whole = rf"(0|[1-9]\d{{0,{whole_digits - 1}}})" + places
    body = f"{whole}|{nonzero_fraction}" if positive else whole
    return f"^{'-?' if negative else ''}({body})$"


def decimal_type(*, max_digits: int, ge: int | None = None, gt: int | None = None, le: int | None = None):
    """A decimal input with two places (an amount, a percentage): decimal text such as ``"12.50"``, or a
    whole JSON number. A JSON fraction (``12.5``) is refused with a 422: JSON parsers read it as a binary
    float, which cannot hold most amounts exactly. The OpenAPI document states exactly what is taken (an
    integer within the bounds, or text matching the pattern), not pydantic's "a number or any text";
    tests/api/test_openapi_contract.py holds the two statements equal."""
    whole_digits = max_digits - 2
    largest = min(10 ** whole_digits - 1, le if le is not None else 10 ** whole_digits - 1)
    pattern = _decimal_pattern(whole_digits, negative=ge is None and gt is None, positive=gt == 0,
                               at_most_100=le == 100)
    compiled = re.compile(pattern)
    smallest = ge if ge is not None else gt + 1 if gt is not None else -largest
    integer = {"type": "integer", "minimum": smallest, "maximum": largest}

    def before(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a number is expected, not true or false")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError('send a fraction as text, e.g. "12.50": a JSON fraction is a binary float, '
                                 "which cannot hold most amounts exactly")
            return int(value)
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise ValueError(f"must be a decimal number with at most {whole_digits} digits before the point "
                             'and 2 after it, e.g. "12.50"')
        return value

    # Stated in place of pydantic's "a number or any text" (WithJsonSchema, which holds in query
    # parameters too, where ninja sets a field's json_schema_extra of its own).
    document = WithJsonSchema({"anyOf": [integer, {"type": "string", "pattern": pattern}]})
    return Annotated[decimal.Decimal, BeforeValidator(before),
                     Field(max_digits=max_digits, decimal_places=2, ge=ge, gt=gt, le=le), document]


# The decimal inputs of the API, one name per kind of value.
Money = decimal_type(max_digits=13, ge=0)
PositiveMoney = decimal_type(max_digits=13, gt=0)
SignedMoney = decimal_type(max_digits=13)
AssetValue = decimal_type(max_digits=14, ge=0)
PositiveAssetValue = decimal_type(max_digits=14, gt=0)
Percent = decimal_type(max_digits=5, ge=0, le=100)
PositivePercent = decimal_type(max_digits=5, gt=0, le=100)
