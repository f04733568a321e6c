from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


@checks.register()
def invoice_font(app_configs=None, **kwargs):
    from .pdf import font_path

    if font_path() is None:
        return [checks.Warning(
            "No CJK TrueType font to embed in invoice PDFs: a viewer without Chinese fonts shows boxes.",
            hint="Install Debian's fonts-wqy-microhei or set INVOICE_FONT_PATH to a .ttf/.ttc file.",
            id="billing.W001")]
    return []


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        from bookings.extensions import booking_parts
        from catalog.extensions import published_fees
        from instrumentshare.accounts.extensions import personal_data_sections
        from submissions.extensions import request_parts

        from . import privacy
        from .queries import fee_standard
        from .services import BookingAccountPart, SubmissionAccountPart

        published_fees.register(fee_standard)          # the instrument page shows the rate card's fees
        booking_parts.register(BookingAccountPart)     # the account a booking is charged to, by billing's rules
        request_parts.register(SubmissionAccountPart)  # the account a sample request is charged to
        personal_data_sections.register(privacy.personal_data)
