"""The outbox in Django's admin: every notification visible, overdue and failed ones first to find,
and "send again" for those that failed or waited too long. Sending goes through the service (audited)."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from .models import Notification
from .services import notifications


class OverdueFilter(admin.SimpleListFilter):
    title = _("overdue")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", _("Pending too long"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(pk__in=notifications.overdue().values("pk"))
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "booking", "kind", "sequence", "state", "attempts", "next_attempt_at", "last_error",
                    "created_at", "sent_at")
    list_filter = ("state", OverdueFilter, "kind")
    actions = ["send_again"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Send again"))
    def send_again(self, request, queryset):
        count = notifications.send_again(actor=request.user, notification_ids=list(queryset.values_list("pk",
                                                                                                         flat=True)))
        self.message_user(request, _("%(count)d notifications are back in the outbox.") % {"count": count},
                          messages.SUCCESS)
