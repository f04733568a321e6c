from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self) -> None:
        from catalog.extensions import booking_changes, free_instruments, windows_refreshed
        from instrumentshare.accounts.extensions import personal_data_sections

        from . import privacy
        from .availability import instruments_free_for, keep_stored_days
        from .services.changes import BookingChanges

        free_instruments.register(instruments_free_for)      # the catalog's "free between" search
        personal_data_sections.register(privacy.personal_data)
        booking_changes.register(BookingChanges)              # what a change to an instrument does to bookings
        windows_refreshed.register(keep_stored_days)          # availability's stored days, made again at once
