from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = _("Instrument catalog")

    def ready(self) -> None:
        from instrumentshare.accounts.extensions import personal_data_sections

        from . import privacy

        personal_data_sections.register(privacy.personal_data)
