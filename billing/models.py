"""Billing: accounts that pay, rate cards that price, charges, invoices, vouchers and payments.

The chain from use to money: reconciliation's ``BillableItem`` → one ``Charge`` priced with the
``RateCard`` valid at the service's start → closing a ``BillingPeriod`` groups the charges of one
account into one ``Invoice`` (lines per instrument), applies ``Voucher`` shares (``VoucherEntry``
ledger), and the payer pays (``Payment``, Stripe for external payers, confirmed by ``StripeEvent``).
Issued invoices never change; a ``credit_note`` invoice corrects one, and a ``Refund`` returns money.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from bookings.models import Booking
from catalog.models import Instrument
from instrumentshare.accounts.models import Lab, Organization
from instrumentshare.core.time import SafeDateTimeField
from submissions.models import SampleRequest
from usage.models import BillableItem

MONEY = {"max_digits": 13, "decimal_places": 2}
PERIOD_VALIDATOR = RegexValidator(r"^\d{4}-(0[1-9]|1[0-2])$", _("A period is a month written YYYY-MM."))


class ImmutableError(Exception):
    """An issued invoice, a used rate card or a ledger row was about to change."""


# --- accounts ---------------------------------------------------------------------------------


class BillingAccount(models.Model):
    class Kind(models.TextChoices):
        COST_CENTRE = "cost_centre", _("Internal cost centre")
        PROJECT = "project", _("Research project")
        EXTERNAL = "external", _("External payer")

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    organization = models.ForeignKey(Organization, verbose_name=_("organization"), on_delete=models.PROTECT,
                                     related_name="billing_accounts", help_text=_("Who pays."))
    lab = models.ForeignKey(Lab, verbose_name=_("lab"), on_delete=models.PROTECT, null=True, blank=True,
                            related_name="billing_accounts", help_text=_("For a lab's cost centre."))
    number = models.CharField(_("number"), max_length=60, help_text=_("Cost centre or project number."))
    name = models.CharField(_("name"), max_length=200)
    funding_programme = models.CharField(_("funding programme"), max_length=200, blank=True)
    pi = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("principal investigator"),
                           on_delete=models.PROTECT, null=True, blank=True, related_name="pi_accounts")
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    budget_cap = models.DecimalField(_("budget cap"), null=True, blank=True, **MONEY,
                                     validators=[MinValueValidator(Decimal("0"))])
    budget_warning_percent = models.PositiveSmallIntegerField(_("warn at (percent of the cap)"), default=80,
                                                              validators=[MaxValueValidator(100)])
    billing_name = models.CharField(_("billing name"), max_length=200, blank=True)
    billing_address = models.CharField(_("billing address"), max_length=300, blank=True)
    tax_number = models.CharField(_("tax number"), max_length=40, blank=True)
    contact_name = models.CharField(_("contact"), max_length=100, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=40, blank=True)
    currency = models.CharField(_("currency"), max_length=3, default=settings.DEFAULT_CURRENCY)
    is_active = models.BooleanField(_("active"), default=True)
    stripe_customer_id = models.CharField(max_length=100, blank=True, editable=False)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organization__name_zh", "number"]
        verbose_name = _("billing account")
        verbose_name_plural = _("billing accounts")
        constraints = [
            models.UniqueConstraint(fields=["organization", "number"], name="billing_account_number_per_org"),
            # A lab has one cost centre; an organization one external payer account.
            models.UniqueConstraint(fields=["lab"], condition=Q(kind="cost_centre"), name="one_cost_centre_per_lab"),
            models.UniqueConstraint(fields=["organization"], condition=Q(kind="external"),
                                    name="one_payer_account_per_org"),
            models.CheckConstraint(condition=Q(kind="cost_centre", lab__isnull=False) | ~Q(kind="cost_centre"),
                                   name="cost_centre_has_lab"),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True) | Q(valid_until__isnull=True) | Q(valid_from__lte=models.F(
                    "valid_until")), name="billing_account_validity_order"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"

    @property
    def payer_name(self) -> str:
        return self.billing_name or self.organization.name_zh

    def is_valid_on(self, day) -> bool:
        return self.is_active and (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until)


class BookingAccount(models.Model):
    """The billing account a booking is charged to, named when it was booked and checked by billing's
    rules (the booker may charge it; it is valid on the day of use). Billing's row, not a column of the
    booking: bookings sits below billing and knows nothing of accounts. A booking without one is
    charged to the booker's default account."""

    booking = models.OneToOneField(Booking, on_delete=models.CASCADE, primary_key=True,
                                   related_name="billing_account")
    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="booking_links")

    class Meta:
        verbose_name = _("account of a booking")
        verbose_name_plural = _("accounts of bookings")

    def __str__(self) -> str:
        return f"booking {self.booking_id} -> account {self.account_id}"


class SubmissionAccount(models.Model):
    """The billing account a sample request is charged to: billing's part of the request
    (``submissions.extensions.request_parts``), as ``BookingAccount`` is of a booking."""

    request = models.OneToOneField(SampleRequest, on_delete=models.CASCADE, primary_key=True,
                                   related_name="billing_account")
    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="submission_links")

    class Meta:
        verbose_name = _("account of a sample request")
        verbose_name_plural = _("accounts of sample requests")

    def __str__(self) -> str:
        return f"sample request {self.request_id} -> account {self.account_id}"


class AccountAuthorization(models.Model):
    """Who may charge an account besides those the account's kind lets in. The PI decides."""

    class State(models.TextChoices):
        PENDING = "pending", _("Awaiting the PI")
        APPROVED = "approved", _("Approved")
        DECLINED = "declined", _("Declined")
        REVOKED = "revoked", _("Revoked")

    account = models.ForeignKey(BillingAccount, on_delete=models.CASCADE, related_name="authorizations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_authorizations")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    requested_at = SafeDateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = SafeDateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [models.UniqueConstraint(fields=["account", "user"], name="account_authorization_once")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.account_id} ({self.state})"


# --- prices -----------------------------------------------------------------------------------


class UserClass(models.TextChoices):
    INTERNAL = "internal", _("Internal")
    ACADEMIC = "academic", _("Other academic")
    INDUSTRY = "industry", _("Industry")


class RateCard(models.Model):
    """An instrument's prices from one day on (in the instrument's zone) until the next card.

    A card that priced a charge is frozen: a price change is a new card with a later date, so
    charges already made keep the price they were made with.
    """

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="rate_cards")
    valid_from = models.DateField(_("valid from"))
    currency = models.CharField(_("currency"), max_length=3, default=settings.DEFAULT_CURRENCY)
    minimum_charge = models.DecimalField(_("minimum charge"), default=Decimal("0"), **MONEY,
                                         validators=[MinValueValidator(Decimal("0"))])
    assisted_surcharge = models.DecimalField(_("assisted-operation surcharge per unit"), default=Decimal("0"),
                                             **MONEY, validators=[MinValueValidator(Decimal("0"))])
    note = models.CharField(_("note"), max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["instrument_id", "-valid_from"]
        verbose_name = _("rate card")
        verbose_name_plural = _("rate cards")
        constraints = [models.UniqueConstraint(fields=["instrument", "valid_from"], name="rate_card_once_per_day")]
        indexes = [models.Index(fields=["instrument", "valid_from"])]

    def __str__(self) -> str:
        return f"rates of {self.instrument_id} from {self.valid_from}"


class Rate(models.Model):
    """One price of a card: per unit (hour, sample, use) for one user class."""

    card = models.ForeignKey(RateCard, on_delete=models.CASCADE, related_name="rates")
    user_class = models.CharField(_("user class"), max_length=10, choices=UserClass.choices)
    unit = models.CharField(_("unit"), max_length=8, choices=BillableItem.Unit.choices)
    price = models.DecimalField(_("price per unit"), **MONEY, validators=[MinValueValidator(Decimal("0"))])

    class Meta:
        ordering = ["card_id", "unit", "user_class"]
        constraints = [
            models.UniqueConstraint(fields=["card", "user_class", "unit"], name="rate_once_per_class_and_unit"),
            models.CheckConstraint(condition=Q(price__gte=0), name="rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.price}/{self.unit} ({self.user_class})"


# --- periods and charges ----------------------------------------------------------------------


class BillingPeriod(models.Model):
    """A month of one provider organization's charges. Closing it issues the invoices, once.

    The close runs as a task; its progress is kept here so any web process can show it. Its figures
    (``invoices_issued``, and ``charges_created``: the usage charges on those invoices) are counted
    from its invoices when it closes, never added up run by run, so a close interrupted and finished
    later says what exists.
    """

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSING = "closing", _("Closing")
        CLOSED = "closed", pgettext_lazy("billing period", "Closed")
        FAILED = "failed", _("Failed")

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="billing_periods")
    month = models.CharField(_("period"), max_length=7, validators=[PERIOD_VALIDATOR])
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    progress_total = models.PositiveIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    charges_created = models.PositiveIntegerField(default=0)
    invoices_issued = models.PositiveIntegerField(default=0)
    unassigned_items = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    started_at = SafeDateTimeField(null=True, blank=True)
    closed_at = SafeDateTimeField(null=True, blank=True)
    # Moved by a running close after every account: a close whose heartbeat is older than
    # billing.services.closing.STUCK_AFTER has lost its worker and may be run again.
    heartbeat_at = SafeDateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month", "organization_id"]
        constraints = [models.UniqueConstraint(fields=["organization", "month"], name="billing_period_once")]

    def __str__(self) -> str:
        return f"{self.month} of {self.organization_id} ({self.state})"

    @property
    def percent(self) -> int:
        if self.state == self.State.CLOSED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))


class Charge(models.Model):
    """Money owed for one service (``usage``), or a manual correction of it (``adjustment``, ``waiver``).

    Usage charges are one per billable item. A charge's amount never changes; a correction is a
    new row, so an export of any month adds up to what was invoiced.
    """

    class Kind(models.TextChoices):
        USAGE = "usage", _("Usage")
        ADJUSTMENT = "adjustment", _("Adjustment")
        WAIVER = "waiver", _("Waiver")

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.USAGE)
    item = models.OneToOneField(BillableItem, on_delete=models.PROTECT, null=True, blank=True, related_name="charge")
    adjusts = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="corrections")
    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="charges")
    provider = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="provided_charges",
                                 help_text=_("The organization that owns the instrument and issues the invoice."))
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="charges")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                             related_name="charges")
    period = models.CharField(max_length=7, validators=[PERIOD_VALIDATOR])
    service_start = SafeDateTimeField()
    user_class = models.CharField(max_length=10, choices=UserClass.choices, blank=True)
    unit = models.CharField(max_length=8, choices=BillableItem.Unit.choices, blank=True)
    # Hours for the hour unit (minutes / 60, to 4 places, for reading), else the count.
    quantity = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    minutes = models.PositiveIntegerField(default=0)
    rate_card = models.ForeignKey(RateCard, on_delete=models.PROTECT, null=True, blank=True, related_name="charges")
    unit_price = models.DecimalField(**MONEY, default=Decimal("0"))
    surcharge = models.DecimalField(**MONEY, default=Decimal("0"), help_text=_("Assisted operation, per unit."))
    minimum_applied = models.BooleanField(default=False)
    amount = models.DecimalField(**MONEY)
    voucher_amount = models.DecimalField(**MONEY, default=Decimal("0"))
    currency = models.CharField(max_length=3, default=settings.DEFAULT_CURRENCY)
    reason = models.CharField(max_length=500, blank=True)
    invoice = models.ForeignKey("Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="charges")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    created_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service_start", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind="usage", item__isnull=False) | ~Q(kind="usage"),
                                   name="usage_charge_has_item"),
            models.CheckConstraint(condition=Q(kind="usage") | ~Q(reason=""), name="correction_has_reason"),
            # A charge is waived at most once.
            models.UniqueConstraint(fields=["adjusts"], condition=Q(kind="waiver"), name="one_waiver_per_charge"),
        ]
        indexes = [
            models.Index(fields=["provider", "period"]),
            models.Index(fields=["account", "period"]),
            models.Index(fields=["period", "id"]),
            models.Index(fields=["user", "service_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} ({self.period})"

    @property
    def amount_due(self) -> Decimal:
        return self.amount - self.voucher_amount


# --- invoices ---------------------------------------------------------------------------------


class InvoiceQuerySet(models.QuerySet):
    def delete(self):
        raise ImmutableError("Invoices are never deleted; issue a credit note.")

    def update(self, **kwargs):
        if set(kwargs) - Invoice.MUTABLE_FIELDS:
            raise ImmutableError("An issued invoice does not change; issue a credit note.")
        return super().update(**kwargs)


class InvoiceSequence(models.Model):
    """The last number used, per issuing organization, year and series. Locked while numbering."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField()
    series = models.CharField(max_length=4)  # INV, CN
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "year", "series"], name="invoice_sequence_once")]

    def __str__(self) -> str:
        return f"{self.series} {self.year} of {self.organization_id}: {self.last}"


class Invoice(models.Model):
    class Kind(models.TextChoices):
        INVOICE = "invoice", _("Invoice")
        CREDIT_NOTE = "credit_note", _("Credit note")

    class State(models.TextChoices):
        ISSUED = "issued", _("Issued")
        PAID = "paid", _("Paid")
        CREDITED = "credited", _("Credited")

    # Payment bookkeeping may move on an issued invoice; nothing it says to the payer may.
    MUTABLE_FIELDS = frozenset({"state", "amount_paid", "paid_at", "credited_amount"})

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    issuer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="issued_invoices")
    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="invoices")
    period = models.CharField(max_length=7, validators=[PERIOD_VALIDATOR])
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    number = models.CharField(max_length=40)
    credit_for = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="credit_notes")
    reason = models.CharField(max_length=500, blank=True)
    currency = models.CharField(max_length=3, default=settings.DEFAULT_CURRENCY)
    subtotal = models.DecimalField(**MONEY)
    voucher_amount = models.DecimalField(**MONEY, default=Decimal("0"))
    amount_due = models.DecimalField(**MONEY)
    amount_paid = models.DecimalField(**MONEY, default=Decimal("0"))
    credited_amount = models.DecimalField(**MONEY, default=Decimal("0"))
    state = models.CharField(max_length=10, choices=State.choices, default=State.ISSUED)
    issuer_name = models.CharField(max_length=200)
    issuer_address = models.CharField(max_length=300, blank=True)
    issuer_tax_number = models.CharField(max_length=40, blank=True)
    payer_name = models.CharField(max_length=200)
    payer_address = models.CharField(max_length=300, blank=True)
    payer_tax_number = models.CharField(max_length=40, blank=True)
    payer_contact = models.CharField(max_length=100, blank=True)
    payer_email = models.CharField(max_length=254, blank=True)
    account_number = models.CharField(max_length=60)
    account_name = models.CharField(max_length=200)
    funding_programme = models.CharField(max_length=200, blank=True)
    issued_at = SafeDateTimeField(default=timezone.now)
    paid_at = SafeDateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "year", "kind", "sequence"], name="invoice_sequence_unique"),
            models.UniqueConstraint(fields=["issuer", "number"], name="invoice_number_unique"),
            # One invoice per account, period and issuing provider: closing twice cannot add one.
            models.UniqueConstraint(fields=["issuer", "account", "period"], condition=Q(kind="invoice"),
                                    name="one_invoice_per_account_and_period"),
        ]
        indexes = [models.Index(fields=["account", "period"]), models.Index(fields=["issuer", "period"])]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if self.pk is not None and not (update_fields and set(update_fields) <= self.MUTABLE_FIELDS):
            raise ImmutableError("An issued invoice does not change; issue a credit note.")
        # Not a CHECK constraint: SQLite would compare the decimals as floating point.
        if self.amount_due != self.subtotal - self.voucher_amount:
            raise ValueError("amount due must be the subtotal less the voucher share")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("Invoices are never deleted; issue a credit note.")

    @property
    def is_credit_note(self) -> bool:
        return self.kind == self.Kind.CREDIT_NOTE

    @property
    def outstanding(self) -> Decimal:
        if self.is_credit_note or self.state == self.State.CREDITED:
            return Decimal("0.00")
        return max(Decimal("0.00"), self.amount_due - self.amount_paid - self.credited_amount)


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    description = models.CharField(max_length=300)
    hours = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    samples = models.PositiveIntegerField(default=0)
    uses = models.PositiveIntegerField(default=0)
    charge_count = models.PositiveIntegerField(default=0)
    amount = models.DecimalField(**MONEY)
    voucher_amount = models.DecimalField(**MONEY, default=Decimal("0"))

    class Meta:
        ordering = ["invoice_id", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position")]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ImmutableError("Invoice lines do not change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("Invoice lines are never deleted.")


# --- innovation vouchers ----------------------------------------------------------------------


class Voucher(models.Model):
    """An innovation voucher the science bureau issued to a company.

    At invoicing it pays ``share_percent`` of each eligible charge, never more than its balance,
    nor more than ``yearly_cap`` across all the company's vouchers in a calendar year. The
    balance moves only together with a ``VoucherEntry``: the entries always add up to it.
    """

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        REVOKED = "revoked", _("Revoked")

    number = models.CharField(_("number"), max_length=40, unique=True)
    company = models.ForeignKey(Organization, verbose_name=_("company"), on_delete=models.PROTECT,
                                related_name="vouchers")
    amount = models.DecimalField(_("amount"), **MONEY, validators=[MinValueValidator(Decimal("0.01"))])
    share_percent = models.DecimalField(_("share of a fee (%)"), max_digits=5, decimal_places=2,
                                        validators=[MinValueValidator(Decimal("0.01")),
                                                    MaxValueValidator(Decimal("100"))])
    yearly_cap = models.DecimalField(_("yearly cap per company"), null=True, blank=True, **MONEY)
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"))
    eligible_providers = models.ManyToManyField(Organization, verbose_name=_("eligible providers"), blank=True,
                                                related_name="+", help_text=_("None means every provider."))
    balance = models.DecimalField(**MONEY)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    currency = models.CharField(max_length=3, default=settings.DEFAULT_CURRENCY)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")
    issued_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["valid_until", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0) & Q(balance__lte=models.F("amount")),
                                   name="voucher_balance_within_amount"),
            models.CheckConstraint(condition=Q(valid_from__lte=models.F("valid_until")), name="voucher_validity_order"),
            models.CheckConstraint(condition=Q(share_percent__gt=0) & Q(share_percent__lte=100),
                                   name="voucher_share_range"),
        ]

    def __str__(self) -> str:
        return self.number

    def is_valid_on(self, day) -> bool:
        return self.state == self.State.ACTIVE and self.valid_from <= day <= self.valid_until


class VoucherEntry(models.Model):
    """The voucher ledger: issue (+amount), redeem (−share of one charge), reverse (+, a credit note)."""

    class Kind(models.TextChoices):
        ISSUE = "issue", _("Issued")
        REDEEM = "redeem", _("Redeemed")
        REVERSE = "reverse", _("Reversed")

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    amount = models.DecimalField(**MONEY, help_text=_("Signed: what the balance moved by."))
    balance_after = models.DecimalField(**MONEY)
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, null=True, blank=True, related_name="voucher_entries")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="voucher_entries")
    year = models.PositiveSmallIntegerField(help_text=_("The calendar year the yearly cap counts it in."))
    created_at = SafeDateTimeField(default=timezone.now)

    class Meta:
        ordering = ["voucher_id", "id"]
        constraints = [
            # No service (one usage charge per service record) is redeemed twice, by any voucher.
            models.UniqueConstraint(fields=["charge"], condition=Q(kind="redeem"), name="charge_redeemed_once"),
            models.UniqueConstraint(fields=["charge"], condition=Q(kind="reverse"), name="charge_reversed_once"),
            models.UniqueConstraint(fields=["voucher"], condition=Q(kind="issue"), name="voucher_issued_once"),
            models.CheckConstraint(condition=Q(kind="redeem", amount__lt=0) | ~Q(kind="redeem"),
                                   name="redemption_is_negative"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="voucher_entry_balance_not_negative"),
        ]
        indexes = [models.Index(fields=["year", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on {self.voucher_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ImmutableError("Ledger rows do not change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("Ledger rows are never deleted.")


# --- payments ---------------------------------------------------------------------------------


class Payment(models.Model):
    class Method(models.TextChoices):
        STRIPE = "stripe", _("Online (Stripe)")
        TRANSFER = "transfer", _("Bank transfer")

    class State(models.TextChoices):
        CREATING = "creating", _("Being created")
        PENDING = "pending", _("Awaiting payment")
        PROCESSING = "processing", _("Processing")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Canceled")

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    method = models.CharField(max_length=10, choices=Method.choices)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default=settings.DEFAULT_CURRENCY)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATING)
    # Stored before Stripe is called: a retry after a crash or a timeout asks for the same intent.
    idempotency_key = models.CharField(max_length=80, unique=True)
    stripe_payment_intent = models.CharField(max_length=100, null=True, blank=True, unique=True)
    client_secret = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    created_at = SafeDateTimeField(default=timezone.now)
    succeeded_at = SafeDateTimeField(null=True, blank=True)
    last_event_at = SafeDateTimeField(null=True, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["invoice", "state"])]

    def __str__(self) -> str:
        return f"{self.method} {self.amount} for {self.invoice_id} ({self.state})"


class Refund(models.Model):
    class State(models.TextChoices):
        CREATING = "creating", _("Being created")
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    credit_note = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default=settings.DEFAULT_CURRENCY)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CREATING)
    idempotency_key = models.CharField(max_length=80, unique=True)
    stripe_refund = models.CharField(max_length=100, null=True, blank=True, unique=True)
    created_at = SafeDateTimeField(default=timezone.now)
    succeeded_at = SafeDateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"refund {self.amount} of {self.payment_id} ({self.state})"


class StripeEvent(models.Model):
    """Every Stripe event id we accepted, once: a redelivery finds its row and does nothing."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    created = SafeDateTimeField(help_text=_("When Stripe says the event happened."))
    object_id = models.CharField(max_length=100, blank=True)
    payload = models.JSONField()
    received_at = SafeDateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


# --- post-subsidies ---------------------------------------------------------------------------


class SubsidyPolicy(models.Model):
    """The city's reward for sharing, per year: a share of eligible external fees, with caps.

    Defaults follow Qingdao's practice; the bureau sets each year's figures.
    """

    year = models.PositiveSmallIntegerField(unique=True)
    provider_share_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("20"))
    provider_cap = models.DecimalField(**MONEY, default=Decimal("1000000"))
    enterprise_share_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("10"))
    designated_share_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("20"))
    enterprise_cap = models.DecimalField(**MONEY, default=Decimal("200000"))
    designated_enterprises = models.ManyToManyField(
        Organization, blank=True, related_name="+",
        help_text=_("Enterprises of designated types (e.g. high-tech SMEs) get the higher share."))
    exclude_voucher_share = models.BooleanField(
        default=True, help_text=_("Fees already paid by innovation vouchers are not rewarded again."))
    excluded_instruments = models.ManyToManyField(Instrument, blank=True, related_name="+")

    class Meta:
        ordering = ["-year"]

    def __str__(self) -> str:
        return f"subsidy policy {self.year}"


class RelatedParty(models.Model):
    """Two organizations whose services to each other earn no subsidy (one owns the other, say)."""

    first = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="related_party_once"),
            models.CheckConstraint(condition=Q(first__lt=models.F("second")), name="related_party_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.first_id} ~ {self.second_id}"
