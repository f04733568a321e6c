from django.urls import path, register_converter

from . import views


class IdConverter:
    """A database id: at most 18 digits, so no path number overflows a 64-bit column (a 404, not a 500)."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "catalog_id")

app_name = "catalog"

urlpatterns = [
    path("", views.search, name="search"),
    path("new/", views.new, name="new"),
    path("mine/", views.my_labs, name="my_labs"),
    path("import/", views.import_page, name="import"),
    path("export/<slug:lab_code>.<str:fmt>", views.export, name="export"),
    path("compliance/", views.compliance_page, name="compliance"),
    path("compliance/export.<str:fmt>", views.compliance_export, name="compliance_export"),
    path("requests/", views.listing_requests, name="listing_requests"),
    path("training-requests/", views.training_queue, name="training_queue"),
    path("training-requests/<catalog_id:request_id>/<slug:action>/", views.decide_training, name="decide_training"),
    path("requests/<catalog_id:request_id>/decide/", views.decide, name="decide"),
    path("<catalog_id:instrument_id>/", views.detail, name="detail"),
    path("<catalog_id:instrument_id>/training/", views.request_training, name="request_training"),
    path("<catalog_id:instrument_id>/manage/", views.manage, name="manage"),
    path("<catalog_id:instrument_id>/manage/<slug:action>/", views.listing_action, name="listing_action"),
    path("<catalog_id:instrument_id>/edit/", views.edit, name="edit"),
    path("<catalog_id:instrument_id>/policy/", views.policy, name="policy"),
    path("<catalog_id:instrument_id>/hours/", views.hours, name="hours"),
    path("<catalog_id:instrument_id>/hours/exception/", views.add_exception, name="add_exception"),
    path("<catalog_id:instrument_id>/downtime/", views.downtime, name="downtime"),
    path("<catalog_id:instrument_id>/downtime/<catalog_id:downtime_id>/cancel/", views.cancel_downtime,
         name="cancel_downtime"),
    path("<catalog_id:instrument_id>/qualifications/", views.qualifications, name="qualifications"),
    path("<catalog_id:instrument_id>/qualifications/<catalog_id:item_id>/<slug:action>/", views.qualification_action,
         name="qualification_action"),
]
