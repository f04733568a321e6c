from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SubmissionsConfig(AppConfig):
    name = "submissions"
    verbose_name = _("Sample submissions")

    def ready(self) -> None:
        from instrumentshare.accounts.extensions import personal_data_sections

        from . import privacy

        personal_data_sections.register(privacy.personal_data)
