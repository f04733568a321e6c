from django.urls import path

from . import views

app_name = "submissions"

urlpatterns = [
    path("", views.mine, name="mine"),
    path("lab/", views.lab_queue, name="lab_queue"),
    path("lab/receive", views.receive_many, name="receive_many"),
    path("new/<int:instrument_id>/", views.new, name="new"),
    path("<int:request_id>/", views.detail, name="detail"),
    path("<int:request_id>/files/<int:file_id>/", views.download, name="download"),
    path("<int:request_id>/<slug:move>", views.act, name="act"),
    path("files/<str:token>/", views.signed_download, name="signed_download"),
]
