"""Every write of the billing app, one import away (``from billing import services``):

- ``accounts``: billing accounts, who may charge them, and the account a booking or an item is charged to;
- ``rates``: rate cards; ``charges``: billable items priced into charges, adjustments, waivers;
- ``vouchers``: innovation vouchers; ``closing``: closing a month into invoices, credit notes, transfers;
- ``payments``: online payment through Stripe, webhooks, refunds.
"""

from .accounts import (
    AccountDirectory,
    BookingAccountPart,
    SubmissionAccountPart,
    account_for_item,
    authorize_user,
    check_account_usable,
    create_account,
    decide_account_access,
    default_account_for,
    request_account_access,
    resolve_account_for_booking,
    revoke_account_access,
    update_account,
)
from .charges import ChargeRun, adjust_charges, charge_items, waive_charge
from .rates import can_manage_rates, create_rate_card, delete_rate_card
from .vouchers import issue_voucher, revoke_voucher

__all__ = [
    "SubmissionAccountPart",
    "AccountDirectory", "BookingAccountPart", "ChargeRun", "account_for_item", "adjust_charges", "authorize_user",
    "can_manage_rates", "charge_items", "check_account_usable", "create_account", "create_rate_card",
    "decide_account_access", "default_account_for", "delete_rate_card", "issue_voucher", "request_account_access",
    "resolve_account_for_booking", "revoke_account_access", "revoke_voucher", "update_account", "waive_charge",
]
