from django.urls import path

from . import views

app_name = "usage"

# Under /bookings/, beside the bookings app's own pages (the URLs are those of before the split).
urlpatterns = [
    path("<int:booking_id>/check-in", views.check_in, name="check_in"),
    path("<int:booking_id>/check-out", views.check_out, name="check_out"),
    path("review/", views.review, name="review"),
]
