from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "instrumentshare.core"
    label = "core"
    verbose_name = "InstrumentShare core"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import dbtime

        connection_created.connect(dbtime.install, dispatch_uid="instrumentshare.core.dbtime")
