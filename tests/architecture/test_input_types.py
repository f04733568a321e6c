"""Every moment a client may send is a bounded time type (``instrumentshare.core.time``): each
datetime and date in every input model of every API operation (body, query, path, form), and in
every page form. Every model DateTimeField of ours reads stored values safely."""

import datetime as dt
import typing

import pytest
from django import forms
from django.apps import apps
from django.db import models

from instrumentshare.api import api
from instrumentshare.core.time import (
    BoundedDateField,
    BoundedDateTimeField,
    SafeDateTimeField,
    bounded_date,
    bounded_datetime,
)

# The user's last_login and date_joined come from Django's AbstractUser and only Django writes them.
DJANGO_OWN = {"last_login", "date_joined"}
OURS = {"accounts", "audit", "catalog", "bookings", "submissions", "usage", "billing", "oversight", "portal"}


def _operations():
    for router_prefix, router in api._routers:
        for path, view in router.path_operations.items():
            for operation in view.operations:
                yield f"{router_prefix}{path}", operation


def _unbounded(annotation, metadata, name, seen) -> list[str]:
    """Field paths whose type is a datetime or date without the bound."""
    validators = {getattr(item, "func", None) for item in metadata}
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _unbounded(base, [*metadata, *extra], name, seen)
    if origin is not None:
        found = []
        for argument in typing.get_args(annotation):
            found += _unbounded(argument, metadata, name, seen)
        return found
    if annotation is dt.datetime:
        return [] if bounded_datetime in validators else [name]
    if annotation is dt.date:
        return [] if bounded_date in validators else [name]
    if isinstance(annotation, type) and hasattr(annotation, "model_fields") and annotation not in seen:
        seen.add(annotation)
        return _model_unbounded(annotation, name, seen)
    return []


def _model_unbounded(model, prefix, seen) -> list[str]:
    found = []
    for field_name, field in model.model_fields.items():
        found += _unbounded(field.annotation, list(field.metadata), f"{prefix}.{field_name}", seen)
    return found


def test_every_datetime_and_date_an_operation_accepts_is_bounded():
    offenders = []
    for path, operation in _operations():
        for model in operation.models:
            for name in _model_unbounded(model, f"{','.join(operation.methods)} {path}", set()):
                offenders.append(name)
    assert offenders == [], "\n".join(offenders)


def _our_forms():
    import importlib
    import inspect
    import pkgutil

    for app in OURS:
        config = next((c for c in apps.get_app_configs() if c.label == app), None)
        if config is None:
            continue
        for info in pkgutil.walk_packages([config.path], prefix=f"{config.name}."):
            if not info.name.rsplit(".", 1)[-1].startswith("forms"):
                continue
            module = importlib.import_module(info.name)
            for _name, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, forms.BaseForm) and value.__module__ == module.__name__:
                    yield value


def test_every_page_form_datetime_is_bounded():
    offenders = [f"{form.__module__}.{form.__name__}.{name}"
                 for form in _our_forms() for name, field in form.base_fields.items()
                 if (isinstance(field, forms.DateTimeField) and not isinstance(field, BoundedDateTimeField))
                 or (isinstance(field, forms.DateField) and not isinstance(field, BoundedDateField))]
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize("label", sorted(OURS))
def test_every_model_datetime_reads_stored_values_safely(label):
    try:
        config = apps.get_app_config(label)
    except LookupError:
        pytest.skip(f"no app {label}")
    offenders = [f"{model.__name__}.{field.name}" for model in config.get_models()
                 for field in model._meta.get_fields()
                 if isinstance(field, models.DateTimeField)
                 and not isinstance(field, SafeDateTimeField) and field.name not in DJANGO_OWN]
    assert offenders == []
