"""Billing in Django's admin: for looking things up. Money moves only through the services (closing,
credit notes, vouchers), where the rules run and every change is audited, so these views do not edit."""

from django.contrib import admin

from .models import (
    AccountAuthorization,
    BillingAccount,
    BillingPeriod,
    Charge,
    Invoice,
    InvoiceLine,
    Payment,
    RateCard,
    Refund,
    StripeEvent,
    Voucher,
    VoucherEntry,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyAdmin):
    list_display = ("number", "name", "kind", "organization", "pi", "valid_until", "budget_cap", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("number", "name", "organization__name_zh")


@admin.register(AccountAuthorization)
class AccountAuthorizationAdmin(ReadOnlyAdmin):
    list_display = ("account", "user", "state", "decided_at")
    list_filter = ("state",)


@admin.register(RateCard)
class RateCardAdmin(ReadOnlyAdmin):
    list_display = ("instrument", "valid_from", "currency", "minimum_charge", "assisted_surcharge")
    search_fields = ("instrument__name_zh",)


@admin.register(BillingPeriod)
class BillingPeriodAdmin(ReadOnlyAdmin):
    list_display = ("month", "organization", "state", "charges_created", "invoices_issued", "closed_at")
    list_filter = ("state",)


@admin.register(Charge)
class ChargeAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "period", "account", "instrument", "user", "amount", "voucher_amount", "invoice")
    list_filter = ("kind", "period")
    search_fields = ("account__number", "invoice__number")


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("number", "kind", "issuer", "payer_name", "period", "subtotal", "voucher_amount", "amount_due",
                    "state")
    list_filter = ("kind", "state", "period")
    search_fields = ("number", "payer_name", "account_number")
    inlines = [InvoiceLineInline]


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyAdmin):
    list_display = ("number", "company", "amount", "share_percent", "balance", "valid_until", "state")


@admin.register(VoucherEntry)
class VoucherEntryAdmin(ReadOnlyAdmin):
    list_display = ("voucher", "kind", "amount", "balance_after", "charge", "invoice", "created_at")


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("invoice", "method", "amount", "state", "stripe_payment_intent", "created_at")
    list_filter = ("method", "state")


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("payment", "credit_note", "amount", "state", "stripe_refund")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "created", "outcome", "received_at")
    search_fields = ("event_id", "object_id")
