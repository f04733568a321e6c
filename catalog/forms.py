"""Page forms. They parse and present; the rules live in services."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from instrumentshare.core.errors import DomainError
from instrumentshare.core.time import BoundedDateField, BoundedDateTimeField

from . import queries
from .hours import WEEKDAYS, format_day, parse_day, parse_time
from .models import BookingPolicy, Downtime, Instrument, ListingChangeRequest
from .services import INSTRUMENT_FIELDS, POLICY_FIELDS, RICH_TEXT_FIELDS

SORT_CHOICES = [("name", _("Name")), ("value", _("Value, highest first")), ("newest", _("Newest listed"))]


def category_choices() -> list:
    """Leaf categories grouped under their level-2 parent, for a select with optgroups."""
    groups: dict[str, list] = {}
    labels: dict[str, str] = {}
    for category in queries.leaf_categories():
        parent = category.parent if category.level == 3 else category
        labels[parent.code] = f"{parent.code} {parent.name_zh}"
        groups.setdefault(parent.code, []).append((category.code, f"{category.code} {category.name_zh}"))
    return [("", "—")] + [(labels[code], options) for code, options in sorted(groups.items())]


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    c1 = forms.ChoiceField(label=_("Category"), required=False)
    c2 = forms.ChoiceField(label=_("Sub-category"), required=False)
    c3 = forms.ChoiceField(label=_("Instrument type"), required=False)
    organization = forms.TypedChoiceField(label=_("Organization"), required=False, coerce=int, empty_value=None)
    district = forms.ChoiceField(label=_("District"), required=False)
    share_mode = forms.ChoiceField(label=_("Share mode"), required=False,
                                   choices=[("", _("Any"))] + list(Instrument.ShareMode.choices))
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORT_CHOICES)
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    free_from = BoundedDateTimeField(label=_("Free from"), required=False,
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                    help_text=_("Times in Asia/Shanghai"))
    free_to = BoundedDateTimeField(label=_("Free until"), required=False,
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    free_hours = forms.DecimalField(label=_("For at least (hours)"), required=False, min_value=0.5,
                                    max_value=24 * 31, decimal_places=1)

    def __init__(self, data, *, user):
        data = data.copy()
        # A link may name one category code at any level: spread it over the three selects.
        code = data.get("category", "")
        if code and not (data.get("c1") or data.get("c2") or data.get("c3")):
            for level, category in enumerate(queries.category_path(code), start=1):
                data[f"c{level}"] = category.code
        super().__init__(data)
        any_label = ("", _("Any"))
        self.fields["c1"].choices = [any_label] + [(c.code, c.name_zh) for c in queries.child_categories(None)]
        c1, c2 = self._chosen("c1"), None
        if c1:
            self.fields["c2"].choices = [any_label] + [(c.code, c.name_zh) for c in queries.child_categories(c1)]
            c2 = self._chosen("c2")
        if c2:
            self.fields["c3"].choices = [any_label] + [(c.code, c.name_zh) for c in queries.child_categories(c2)]
        self.fields["organization"].choices = [("", _("Any"))] + [
            (o.pk, o.name_zh) for o in queries.search_organizations(user)]
        self.fields["district"].choices = [("", _("Any"))] + [(d, d) for d in queries.search_districts(user)]

    def _chosen(self, name: str) -> str | None:
        value = self.data.get(name) or ""
        return value if value in {code for code, _label in self.fields[name].choices} else None

    def clean(self):
        data = super().clean()
        data["category"] = data.get("c3") or data.get("c2") or data.get("c1") or ""
        return data


class InstrumentForm(forms.ModelForm):
    """The record a lab manager keeps. Lab, organization, listing and share mode are not here."""

    category = forms.ChoiceField(label=_("Category"))

    class Meta:
        model = Instrument
        fields = [name for name in INSTRUMENT_FIELDS if name != "category_id"]
        field_classes = {"purchase_date": BoundedDateField, "acceptance_date": BoundedDateField}
        widgets = {
            "purchase_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "acceptance_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            **{name: forms.Textarea(attrs={"rows": 3}) for name in (
                "specifications", "main_functions", "service_content", "user_requirements", "fee_standard")},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = category_choices()
        if self.instance.pk:
            self.initial["category"] = self.instance.category_id
        self.order_fields(["name_zh", "name_en", "asset_number", "category"])
        for name in RICH_TEXT_FIELDS:
            # Django shows help texts unescaped: no angle brackets in this one.
            self.fields[name].help_text = _("Basic formatting is kept: the HTML tags sub, sup, b, i, p, ul, ol "
                                            "and li. Other markup is removed.")

    def _post_clean(self):
        # Model validation happens in the service, which reports problems per field.
        pass

    def service_fields(self, *, changed_only: bool) -> dict:
        names = self.changed_data if changed_only else list(self.cleaned_data)
        fields = {("category_id" if name == "category" else name): self.cleaned_data[name] for name in names
                  if name in self.cleaned_data}
        return fields

    def add_domain_error(self, error: DomainError) -> None:
        add_domain_error(self, error)


def add_domain_error(form: forms.BaseForm, error: DomainError) -> None:
    """Show a service's refusal on the form: on the fields it names, else above the form."""
    per_field = error.extra.get("fields") if error.extra else None
    if not per_field:
        form.add_error(None, error.detail)
        return
    for name, messages in per_field.items():
        name = "category" if name == "category_id" else name
        form.add_error(name if name in form.fields else None, " ".join(str(m) for m in messages))


class NewInstrumentForm(InstrumentForm):
    lab = forms.ModelChoiceField(label=_("Lab"), queryset=None)
    share_mode = forms.ChoiceField(label=_("Share mode"), choices=Instrument.ShareMode.choices,
                                   initial=Instrument.ShareMode.EXTERNAL)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = queries.managed_labs(user)
        self.order_fields(["lab", "name_zh", "name_en", "asset_number", "category"])


class PolicyForm(forms.ModelForm):
    class Meta:
        model = BookingPolicy
        fields = list(POLICY_FIELDS)

    def _post_clean(self):
        pass


class OpeningHoursForm(forms.Form):
    """One line per weekday: "08:30-12:00, 13:30-17:30"; empty means closed."""

    def __init__(self, *args, rules=(), **kwargs):
        super().__init__(*args, **kwargs)
        days: dict[int, list] = {day: [] for day in range(7)}
        for rule in rules:
            days[rule.weekday].append((rule.open_minute, rule.close_minute))
        for day in range(7):
            self.fields[f"day{day}"] = forms.CharField(
                label=WEEKDAYS[day], required=False, max_length=200, initial=format_day(sorted(days[day])),
                widget=forms.TextInput(attrs={"placeholder": "08:30-12:00, 13:30-17:30"}))

    def clean(self):
        data = super().clean()
        rules = []
        for day in range(7):
            try:
                rules += [(day, opens, closes) for opens, closes in parse_day(data.get(f"day{day}", ""))]
            except DomainError as error:
                self.add_error(f"day{day}", error.detail)
        data["rules"] = rules
        return data


def _time_field(label, placeholder: str):
    return forms.CharField(label=label, required=False, max_length=5,
                           widget=forms.TextInput(attrs={"placeholder": placeholder, "inputmode": "numeric"}))


class OpeningExceptionForm(forms.Form):
    date = BoundedDateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    closed = forms.BooleanField(label=_("Closed all day"), required=False, initial=True)
    opens = _time_field(_("Opens"), "08:30")
    closes = _time_field(_("Closes"), "17:30")
    reason = forms.CharField(label=_("Reason"), required=False, max_length=200)

    def clean(self):
        data = super().clean()
        for name in ("opens", "closes"):
            try:
                data[f"{name}_minute"] = parse_time(data[name]) if data.get(name) else None
            except DomainError as error:
                self.add_error(name, error.detail)
        return data


class DowntimeForm(forms.Form):
    start = BoundedDateTimeField(label=_("From"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = BoundedDateTimeField(label=_("Until"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    kind = forms.ChoiceField(label=_("Kind"), choices=Downtime.Kind.choices)
    reason = forms.CharField(label=_("Reason"), max_length=300)


class QualificationForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    expires = BoundedDateField(label=_("Expires"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(label=_("Note"), required=False, max_length=300)


class ShareModeForm(forms.Form):
    share_mode = forms.ChoiceField(label=_("Share mode"), choices=Instrument.ShareMode.choices)


class ListingRequestForm(forms.Form):
    kind = forms.ChoiceField(label=_("Exemption"), choices=[
        (ListingChangeRequest.Kind.UNPUBLISH, _("Exempt from listing (unpublish)")),
        (ListingChangeRequest.Kind.NOT_SHARED, _("Exempt from sharing (not shared)")),
    ])
    justification = forms.CharField(label=_("Justification"), min_length=20, max_length=4000,
                                    widget=forms.Textarea(attrs={"rows": 4}))


class DecisionForm(forms.Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=2000)


class TrainingRequestForm(forms.Form):
    message = forms.CharField(label=_("Message"), required=False, max_length=2000,
                              widget=forms.Textarea(attrs={"rows": 2}))


class TrainingDecisionForm(forms.Form):
    expires = BoundedDateField(label=_("Qualified until"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(label=_("Note to the requester"), required=False, max_length=300)


class PhotoForm(forms.Form):
    photo = forms.FileField(label=_("Photo"))


class ImportForm(forms.Form):
    lab = forms.ModelChoiceField(label=_("Lab"), queryset=None)
    file = forms.FileField(label=_("File (CSV or XLSX)"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = queries.managed_labs(user)
        if self.fields["lab"].queryset.count() == 1:
            self.fields["lab"].initial = self.fields["lab"].queryset.first()
