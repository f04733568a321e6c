from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        from bookings.extensions import booking_parts
        from catalog.extensions import published_fees
        from instrumentshare.accounts.extensions import personal_data_sections

        from . import privacy
        from .queries import fee_standard
        from .services import BookingAccountPart

        published_fees.register(fee_standard)          # the instrument page shows the rate card's fees
        booking_parts.register(BookingAccountPart)     # the account a booking is charged to, by billing's rules
        personal_data_sections.register(privacy.personal_data)
