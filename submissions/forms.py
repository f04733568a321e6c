"""Forms of the sample submission pages: what the requester sends and what the lab enters at each move."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from instrumentshare.core.time import BoundedDateField, BoundedDateTimeField

from .models import SampleRequest


class RequestForm(forms.Form):
    sample_count = forms.IntegerField(label=_("number of samples"), min_value=1, max_value=10000, initial=1)
    sample_type = forms.CharField(label=_("sample type"), max_length=200,
                                  help_text=_("What the samples are, e.g. TiO2 powder, steel coupon, serum."))
    sample_state = forms.ChoiceField(label=_("sample state"), choices=SampleRequest.SampleState.choices)
    analyses = forms.MultipleChoiceField(label=_("analyses"), widget=forms.CheckboxSelectMultiple)
    hazards = forms.MultipleChoiceField(label=_("hazards"), choices=SampleRequest.Hazard.choices, required=False,
                                        widget=forms.CheckboxSelectMultiple)
    safety_statement = forms.CharField(label=_("safety statement"), required=False, max_length=4000,
                                       widget=forms.Textarea(attrs={"rows": 3}),
                                       help_text=_("Required for hazardous samples: handling, protection, disposal."))
    after_use = forms.ChoiceField(label=_("after the analysis"), choices=SampleRequest.AfterUse.choices,
                                  widget=forms.RadioSelect, initial=SampleRequest.AfterUse.DISPOSE)
    note = forms.CharField(label=_("notes"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, analyses=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["analyses"].choices = [
            (str(a.pk), f"{a.name_zh} {a.name_en} · CNY {a.price_per_sample}/" + str(_("sample"))) for a in analyses]


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), required=False, max_length=2000)


class ReceiveForm(forms.Form):
    received_count = forms.IntegerField(label=_("samples received"), min_value=0, max_value=100000)
    discrepancy = forms.CharField(label=_("discrepancy noted"), required=False, max_length=2000)


class QuoteForm(forms.Form):
    """One line per analysis asked for, at the list price, per sample; the lab edits the prices."""

    valid_until = BoundedDateField(label=_("valid until"), widget=forms.DateInput(attrs={"type": "date"}))
    discount_percent = forms.DecimalField(label=_("discount (percent)"), min_value=Decimal(0),
                                          max_value=Decimal(100), decimal_places=2, initial=Decimal(0))
    note = forms.CharField(label=_("note"), required=False, max_length=2000)

    def __init__(self, *args, request: SampleRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = list(request.analyses.all())
        for analysis in self.lines:
            self.fields[f"price_{analysis.pk}"] = forms.DecimalField(
                label=f"{analysis.name_zh} ({request.sample_count} × )", min_value=Decimal(0), decimal_places=2,
                initial=analysis.price_per_sample)


class ScheduleForm(forms.Form):
    start = BoundedDateTimeField(label=_("scheduled start"),
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = BoundedDateTimeField(label=_("scheduled end"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))


class FileForm(forms.Form):
    file = forms.FileField(label=_("File"))


class RatingForm(forms.Form):
    rating = forms.TypedChoiceField(label=_("rating"), coerce=int, choices=[(i, "★" * i) for i in range(5, 0, -1)])
