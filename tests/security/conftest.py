import pytest

from tests.bookings.conftest import instrument, slot  # noqa: F401 - shared fixtures


@pytest.fixture(scope="module")
def matrix(django_db_setup, django_db_blocker):
    """The authorization matrices' objects and callers (``tests/security/matrix.py``), built once per
    module in a transaction that is rolled back when the module is done. Each test still runs in its
    own savepoint (the ``db`` fixture), so nothing a test writes reaches the next."""
    from django.db import transaction

    from tests.security.matrix import build

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            built = build()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield built
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)
