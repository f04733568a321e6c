from django.urls import path

from . import views

app_name = "submissions"

urlpatterns = [
    path("files/<str:token>/", views.signed_download, name="signed_download"),
]
