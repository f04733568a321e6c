from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from instrumentshare.api import api
from instrumentshare.core import views as core_views
from instrumentshare.core.metrics import metrics_view

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/", include("instrumentshare.accounts.urls")),
    path("instruments/", include("catalog.urls")),
    path("bookings/", include("bookings.urls")),
    path("billing/", include("billing.urls")),
    path("oversight/", include("oversight.urls")),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]

handler404 = "instrumentshare.core.views.not_found"
handler500 = "instrumentshare.core.views.server_error"

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
