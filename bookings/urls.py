from django.urls import path

from . import views

app_name = "bookings"

urlpatterns = [
    path("instrument/<int:instrument_id>/", views.calendar, name="calendar"),
    path("instrument/<int:instrument_id>/events", views.calendar_events, name="calendar_events"),
    path("instrument/<int:instrument_id>/free", views.free_list, name="free_list"),
    path("new/", views.new_booking, name="new"),
    path("<int:booking_id>/", views.detail, name="detail"),
    path("<int:booking_id>/reschedule", views.reschedule, name="reschedule"),
    path("<int:booking_id>/cancel", views.cancel, name="cancel"),
    path("<int:booking_id>/rebook", views.rebook, name="rebook"),
    path("<int:booking_id>/approve", views.approve, name="approve"),
    path("<int:booking_id>/reject", views.reject, name="reject"),
    path("<int:booking_id>/move", views.move, name="move"),
    path("series/<int:series_id>/", views.series, name="series"),
    path("series/<int:series_id>/cancel", views.series_cancel, name="series_cancel"),
    path("mine/", views.mine, name="mine"),
    path("waitlist/", views.waitlist, name="waitlist"),
    path("waitlist/join", views.join_waitlist, name="join_waitlist"),
    path("waitlist/<int:entry_id>/accept", views.accept_offer, name="accept_offer"),
    path("waitlist/<int:entry_id>/decline", views.decline_offer, name="decline_offer"),
    path("waitlist/<int:entry_id>/leave", views.leave_waitlist, name="leave_waitlist"),
    path("lab/", views.lab_queue, name="lab_queue"),
    path("lab/<int:lab_id>/events", views.lab_events, name="lab_events"),
    path("notifications/<int:notification_id>/resend", views.resend_notification, name="resend_notification"),
    path("feed-links/", views.create_feed, name="create_feed"),
    path("feed-links/<int:feed_id>/revoke", views.revoke_feed, name="revoke_feed"),
    path("feeds/instrument/<int:instrument_id>.ics", views.instrument_feed, name="instrument_feed"),
    path("feeds/<str:token>.ics", views.private_feed, name="private_feed"),
]
