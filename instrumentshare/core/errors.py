"""The one domain error type. Services raise it; the API and pages map it once."""


class DomainError(Exception):
    """A rule said no. ``code`` is stable for programs, ``detail`` is for people."""

    status = 422

    def __init__(self, code: str, detail: str, *, status: int | None = None, extra: dict | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = str(detail)
        if status is not None:
            self.status = status
        self.extra = extra or {}


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422


def validated(instance, exclude=None, **options):
    """``instance.full_clean()``, its refusal as one ``Invalid``: each field's messages after its name,
    the model's own rules (its constraints) as their sentences alone, ``fields`` for programs."""
    from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

    try:
        instance.full_clean(exclude=exclude, **options)
    except ValidationError as error:
        detail = "; ".join(" ".join(errors) if field == NON_FIELD_ERRORS else f"{field}: {' '.join(errors)}"
                           for field, errors in error.message_dict.items())
        raise Invalid("invalid", detail, extra={"fields": error.message_dict}) from error
    return instance
