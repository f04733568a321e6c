from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self) -> None:
        from catalog import queries as catalog_queries

        from .availability import instruments_free_for

        def free_for(queryset, start, end, minutes):
            return instruments_free_for(queryset, start, end, minutes)

        if not catalog_queries.FREE_TIME_FILTERS:
            catalog_queries.FREE_TIME_FILTERS.append(free_for)
