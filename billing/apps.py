from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        # A booking may only name an account its booker may charge: the rule is billing's.
        from bookings import services as booking_services

        from .services import resolve_account_for_booking

        if resolve_account_for_booking not in booking_services.ACCOUNT_RESOLVERS:
            booking_services.ACCOUNT_RESOLVERS.append(resolve_account_for_booking)
