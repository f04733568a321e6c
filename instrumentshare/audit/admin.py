from django.contrib import admin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is changed by nobody, admins included."""

    list_display = ("occurred_at", "action", "stream_key", "seq", "actor_repr", "request_id")
    list_filter = ("action",)
    search_fields = ("stream_key", "action", "actor_repr", "request_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
