from django.urls import path

from . import views

app_name = "bookings"

urlpatterns = [
    path("feeds/instrument/<int:instrument_id>.ics", views.instrument_feed, name="instrument_feed"),
    path("feeds/<str:token>.ics", views.private_feed, name="private_feed"),
]
