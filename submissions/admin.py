from django.contrib import admin

from .models import Analysis, SampleRequest, SampleService


@admin.register(SampleRequest)
class SampleRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "instrument", "requester", "state", "sample_count", "submitted_at", "due_at")
    list_filter = ("state",)
    raw_id_fields = ("instrument", "requester", "charged_lab")
    # Work moves through the services (locks, audit, e-mail), never by editing a row here.
    readonly_fields = [field.name for field in SampleRequest._meta.fields]


admin.site.register(SampleService)
admin.site.register(Analysis)
