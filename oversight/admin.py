from django.contrib import admin

from .models import InstrumentYearStat, NationalExport, PurchaseCheck, StatRefresh


@admin.register(StatRefresh)
class StatRefreshAdmin(admin.ModelAdmin):
    list_display = ("year", "refreshed_at", "instruments", "month_rows", "seconds")


@admin.register(InstrumentYearStat)
class InstrumentYearStatAdmin(admin.ModelAdmin):
    """Derived rows (``refresh_stats`` rewrites them): read only."""

    list_display = ("instrument", "year", "organization", "effective_minutes", "external_minutes", "quota_hours")
    list_filter = ("year",)
    search_fields = ("instrument__name_zh", "instrument__asset_number")
    list_select_related = ("instrument", "organization")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(NationalExport)
class NationalExportAdmin(admin.ModelAdmin):
    list_display = ("period", "organization", "created_at", "instrument_count", "service_record_count", "sent_at",
                    "destination")
    list_filter = ("year", "quarter")
    readonly_fields = [field.name for field in NationalExport._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PurchaseCheck)
class PurchaseCheckAdmin(admin.ModelAdmin):
    list_display = ("created_at", "lab", "category", "value", "year", "average_hours", "saturated")
    list_select_related = ("lab", "category")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
