from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import ApiToken, Lab, Membership, Organization, OrganizationRole, User


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name_zh", "name_en", "kind", "district", "credit_code")
    list_filter = ("kind", "district")
    search_fields = ("name_zh", "name_en", "credit_code")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ("name_zh", "organization", "code", "district")
    list_filter = ("organization",)
    search_fields = ("name_zh", "name_en", "code")
    inlines = [MembershipInline]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "full_name", "email", "organization", "is_platform_admin", "is_active")
    list_filter = ("is_platform_admin", "is_active", "organization__kind")
    search_fields = ("username", "full_name", "email")
    fieldsets = BaseUserAdmin.fieldsets + (
        (
            "InstrumentShare",
            {"fields": ("full_name", "organization", "phone", "preferred_language", "is_platform_admin")},
        ),
    )


@admin.register(OrganizationRole)
class OrganizationRoleAdmin(admin.ModelAdmin):
    list_display = ("user", "organization", "role")
    autocomplete_fields = ("user", "organization")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scope", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "digest", "created_at", "last_used_at", "revoked_at")
