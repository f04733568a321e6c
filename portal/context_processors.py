from django.conf import settings

from instrumentshare.accounts import queries

from .navigation import entries_for


def navigation(request):
    user = getattr(request, "user", None)
    return {
        "nav_entries": entries_for(user),
        "user_roles": queries.roles_of(user),
        "display_time_zone": settings.TIME_ZONE,
    }
