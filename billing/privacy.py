"""Billing's part of a person's data export (accounts.extensions.personal_data_sections)."""

from instrumentshare.accounts.privacy import rows

from .models import AccountAuthorization, BillingAccount, Charge


def personal_data(user) -> dict:
    return {
        "accounts_as_pi": rows(BillingAccount.objects.filter(pi=user), "id", "kind", "number", "name",
                               "funding_programme", "valid_from", "valid_until"),
        "account_authorizations": rows(AccountAuthorization.objects.filter(user=user), "account_id",
                                       "account__number", "state", "requested_at", "decided_at"),
        "charges": rows(Charge.objects.filter(user=user).order_by("id"), "id", "kind", "instrument_id", "period",
                        "service_start", "amount", "currency", "account_id", "invoice__number"),
    }
