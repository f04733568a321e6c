from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OversightConfig(AppConfig):
    name = "oversight"
    verbose_name = _("Oversight")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from billing.extensions import period_closed
        from catalog.models import Instrument, ListingChangeRequest
        from instrumentshare.accounts.extensions import personal_data_sections
        from instrumentshare.accounts.models import Lab, Organization

        from . import privacy, services
        from .queries import compliance_changed

        personal_data_sections.register(privacy.personal_data)
        period_closed.register(services.refresh_after_close)  # a close changes income and invoices at once

        # What the dashboard's cached compliance panel depends on.
        for model in (Instrument, ListingChangeRequest, Lab, Organization):
            post_save.connect(compliance_changed, sender=model, dispatch_uid=f"oversight-compliance-{model.__name__}")
            post_delete.connect(compliance_changed, sender=model,
                                dispatch_uid=f"oversight-compliance-delete-{model.__name__}")
