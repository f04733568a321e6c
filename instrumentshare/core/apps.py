from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "instrumentshare.core"
    label = "core"
    verbose_name = "InstrumentShare core"
