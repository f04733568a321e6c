"""The catalog in Django's admin: for looking things up. Changes go through the pages and the API,
where the rules run and every change is audited, so these views do not edit."""

from django.contrib import admin

from .models import (
    BookingPolicy,
    Category,
    Downtime,
    Instrument,
    ListingChangeRequest,
    OpeningException,
    OpeningRule,
    Qualification,
    TrainingRequest,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PolicyInline(ReadOnlyInline):
    model = BookingPolicy


class OpeningRuleInline(ReadOnlyInline):
    model = OpeningRule


class OpeningExceptionInline(ReadOnlyInline):
    model = OpeningException


class DowntimeInline(ReadOnlyInline):
    model = Downtime
    fields = ("start", "end", "kind", "reason", "created_by")


@admin.register(Category)
class CategoryAdmin(ReadOnlyAdmin):
    list_display = ("code", "name_zh", "name_en", "level", "parent")
    list_filter = ("level",)
    search_fields = ("code", "name_zh", "name_en")


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdmin):
    list_display = ("name_zh", "asset_number", "organization", "lab", "category", "original_value",
                    "listing_state", "share_mode", "status")
    list_filter = ("listing_state", "share_mode", "status", "district", "funded_central", "funded_local")
    search_fields = ("name_zh", "name_en", "asset_number", "model_number", "manufacturer")
    list_select_related = ("organization", "lab", "category")
    inlines = [PolicyInline, OpeningRuleInline, OpeningExceptionInline, DowntimeInline]


@admin.register(Qualification)
class QualificationAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "user", "granted_by", "granted_at", "expires_at", "revoked_at")
    search_fields = ("user__username", "instrument__name_zh")
    list_select_related = ("instrument", "user", "granted_by")


@admin.register(TrainingRequest)
class TrainingRequestAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "user", "state", "created_at")
    list_filter = ("state",)


@admin.register(ListingChangeRequest)
class ListingChangeRequestAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "kind", "state", "requested_by", "requested_at", "decided_by", "decided_at")
    list_filter = ("kind", "state")


@admin.register(Downtime)
class DowntimeAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "start", "end", "kind", "reason")
    list_filter = ("kind",)
