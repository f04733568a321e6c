"""Billing forms: closing a period, credit notes, bank transfers, exports, vouchers, adjustments."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from instrumentshare.accounts.models import Organization
from instrumentshare.core.time import BoundedDateField

MONTH = RegexValidator(r"^\d{4}-(0[1-9]|1[0-2])$", _("A period is a month written YYYY-MM."))


class OrganizationChoiceMixin:
    def limit_organizations(self, organization_ids):
        self.fields["organization"].queryset = Organization.objects.filter(pk__in=organization_ids)


class CloseForm(OrganizationChoiceMixin, forms.Form):
    organization = forms.ModelChoiceField(label=_("Organization"), queryset=Organization.objects.none())
    month = forms.CharField(label=_("Period (YYYY-MM)"), max_length=7, validators=[MONTH],
                            widget=forms.TextInput(attrs={"placeholder": "2026-11", "inputmode": "numeric"}))


class ExportForm(OrganizationChoiceMixin, forms.Form):
    organization = forms.ModelChoiceField(label=_("Organization"), queryset=Organization.objects.none(),
                                          required=False, empty_label=_("All my organizations"))
    period = forms.CharField(label=_("Period (YYYY-MM)"), max_length=7, validators=[MONTH])
    format = forms.ChoiceField(label=_("Format"), choices=[("csv", "CSV"), ("xlsx", "XLSX")])


class CreditNoteForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    amount = forms.DecimalField(label=_("Amount (empty: the whole invoice)"), required=False, max_digits=13,
                                decimal_places=2, min_value=0.01)


class TransferForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount received"), max_digits=13, decimal_places=2, min_value=0.01)
    reference = forms.CharField(label=_("Bank reference"), max_length=200)


class WaiveForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500)


class VoucherForm(forms.Form):
    company = forms.ModelChoiceField(label=_("Company"),
                                     queryset=Organization.objects.filter(kind=Organization.Kind.COMPANY))
    amount = forms.DecimalField(label=_("Amount"), max_digits=13, decimal_places=2, min_value=0.01)
    share_percent = forms.DecimalField(label=_("Share of a fee (%)"), max_digits=5, decimal_places=2,
                                       min_value=0.01, max_value=100, initial=40)
    yearly_cap = forms.DecimalField(label=_("Yearly cap per company"), required=False, max_digits=13,
                                    decimal_places=2, min_value=0.01)
    valid_from = BoundedDateField(label=_("Valid from"), widget=forms.DateInput(attrs={"type": "date"}))
    valid_until = BoundedDateField(label=_("Valid until"), widget=forms.DateInput(attrs={"type": "date"}))
    eligible_providers = forms.ModelMultipleChoiceField(
        label=_("Eligible providers (none: all)"), required=False,
        queryset=Organization.objects.exclude(kind=Organization.Kind.COMPANY))
