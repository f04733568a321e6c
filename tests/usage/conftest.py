from tests.bookings.conftest import instrument, slot  # noqa: F401 - the bookings fixtures, for usage's tests
