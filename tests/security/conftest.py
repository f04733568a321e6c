from tests.bookings.conftest import instrument, slot  # noqa: F401 - shared fixtures
