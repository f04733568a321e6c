from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from instrumentshare.api import api
from portal import views as portal_views
from portal.metrics import metrics_view

urlpatterns = [
    # First: every API request is matched here at once, not after the pages' prefixes (no page path
    # starts with api/).
    path("api/v1/", api.urls),
    path("", portal_views.home, name="home"),
    path("favicon.ico", portal_views.favicon, name="favicon"),
    path("audit/heads/", portal_views.audit_heads, name="audit_heads"),
    path("healthz", portal_views.healthz, name="healthz"),
    path("readyz", portal_views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/", include("instrumentshare.accounts.urls")),
    path("instruments/", include("catalog.urls")),
    path("bookings/", include("bookings.urls")),
    path("bookings/", include("usage.urls")),
    path("submissions/", include("submissions.urls")),
    path("billing/", include("billing.urls")),
    path("oversight/", include("oversight.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "portal.views.not_found"
handler500 = "portal.views.server_error"

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
