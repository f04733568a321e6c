from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = _("Usage")

    def ready(self) -> None:
        from bookings.extensions import booking_page_panels
        from instrumentshare.accounts.extensions import personal_data_sections
        from submissions.extensions import completion_parts, work_time

        from . import privacy
        from .samples import SampleCompletion, SampleWorkTime
        from .views import booking_panel

        booking_page_panels.register(booking_panel)          # check in and out on the booking's page
        completion_parts.register(SampleCompletion)          # a completed sample request is billed and recorded
        work_time.register(SampleWorkTime)                   # its scheduled work holds the instrument's time
        personal_data_sections.register(privacy.personal_data)
