"""Forms of the oversight pages."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from catalog import queries as catalog_queries


class CategoryChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.code} {obj.name_zh}"


class PurchaseCheckForm(forms.Form):
    lab = forms.ModelChoiceField(label=_("Purchasing lab"), queryset=None, required=False)
    category = CategoryChoiceField(label=_("Category"), queryset=catalog_queries.leaf_categories())
    value = forms.DecimalField(label=_("Planned purchase value (CNY)"), min_value=Decimal("0.01"),
                               max_digits=14, decimal_places=2)
    year = forms.IntegerField(label=_("Hours of the year"), min_value=2000, max_value=2100, required=False,
                              help_text=_("Default: last year."))

    def __init__(self, *args, labs, require_lab: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = labs
        self.fields["lab"].required = require_lab
        if not require_lab:
            self.fields["lab"].help_text = _("Leave empty to look without keeping a record.")


class ExportForm(forms.Form):
    period = forms.CharField(label=_("Quarter"), max_length=7,
                             validators=[RegexValidator(r"^\d{4}-Q[1-4]$", _("Write the quarter as YYYY-Qn."))],
                             widget=forms.TextInput(attrs={"placeholder": "2026-Q1"}))
    organization = forms.ModelChoiceField(label=_("Organization"), queryset=None, required=False,
                                          empty_label=_("Every reporting organization"))

    def __init__(self, *args, organizations, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations
