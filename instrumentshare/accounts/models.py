"""Organizations, labs, people, their roles, and personal API tokens.

Roles are facts about relations, not flags typed by hand:
- researcher: any active user (a lab membership says where they work);
- lab manager: a ``Membership`` with role ``manager`` for that lab;
- finance officer: an ``OrganizationRole`` with role ``finance`` for that organization;
- platform administrator: ``User.is_platform_admin`` (the city science bureau).
Whether a user is internal or external to an instrument follows from organizations
(``accounts.queries.is_internal``), never from a field.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from instrumentshare.core.time import SafeDateTimeField

from .credit_code import validate_credit_code


class Organization(models.Model):
    class Kind(models.TextChoices):
        UNIVERSITY = "university", _("University")
        INSTITUTE = "institute", _("Research institute")
        COMPANY = "company", _("Company")
        GOVERNMENT = "government", _("Government")
        HOSPITAL = "hospital", _("Hospital")
        OTHER = "other", _("Other")

    name_zh = models.CharField(_("name (Chinese)"), max_length=200, unique=True)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    short_name = models.CharField(_("short name"), max_length=50, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    credit_code = models.CharField(
        _("unified social credit code"),
        max_length=18,
        blank=True,
        validators=[validate_credit_code],
        help_text=_("18 characters, GB 32100-2015."),
    )
    district = models.CharField(_("district"), max_length=50, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name_zh"]
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")
        constraints = [
            models.UniqueConstraint(
                fields=["credit_code"], condition=~Q(credit_code=""), name="organization_credit_code_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name_zh

    @property
    def is_company(self) -> bool:
        return self.kind == self.Kind.COMPANY


class Lab(models.Model):
    """A lab or core facility: the unit that owns and runs instruments."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="labs")
    code = models.SlugField(_("code"), max_length=60, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True)
    district = models.CharField(_("district"), max_length=50, blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    contact_name = models.CharField(_("contact"), max_length=100, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organization__name_zh", "name_zh"]
        verbose_name = _("lab")
        verbose_name_plural = _("labs")
        constraints = [models.UniqueConstraint(fields=["organization", "name_zh"], name="lab_name_per_org")]

    def __str__(self) -> str:
        return self.name_zh


class User(AbstractUser):
    organization = models.ForeignKey(
        Organization,
        verbose_name=_("organization"),
        on_delete=models.PROTECT,
        related_name="users",
        null=True,
        blank=True,
        help_text=_("Where the person works; decides internal or external use of each instrument."),
    )
    full_name = models.CharField(_("full name"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, choices=[("zh-hans", "简体中文"), ("en", "English")], default="zh-hans"
    )
    is_platform_admin = models.BooleanField(
        _("platform administrator"), default=False, help_text=_("The city science bureau's oversight role.")
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.full_name or self.username

    @property
    def display_name(self) -> str:
        return self.full_name or self.get_full_name() or self.username

    @property
    def oversees_platform(self) -> bool:
        """The bureau's role (or a superuser): an active user who reads across every organization.
        On the model, so that apps below accounts (audit) can ask without importing it."""
        return self.is_active and (self.is_platform_admin or self.is_superuser)


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", _("Researcher")
        MANAGER = "manager", _("Lab manager")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("lab membership")
        verbose_name_plural = _("lab memberships")
        constraints = [models.UniqueConstraint(fields=["user", "lab"], name="membership_unique")]
        indexes = [models.Index(fields=["lab", "role"])]

    def __str__(self) -> str:
        return f"{self.user} @ {self.lab} ({self.role})"


class OrganizationRole(models.Model):
    class Role(models.TextChoices):
        FINANCE = "finance", _("Finance officer")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="organization_roles")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("organization role")
        verbose_name_plural = _("organization roles")
        constraints = [
            models.UniqueConstraint(fields=["user", "organization", "role"], name="organization_role_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} @ {self.organization}"


class ApiToken(models.Model):
    """A personal token for scripts. Only its SHA-256 is stored; the plain text is shown once.

    The token is 256 bits of randomness, so a fast hash is enough (no dictionary to attack);
    the digest is unique, so lookup is one indexed equality.
    """

    class Scope(models.TextChoices):
        READ = "read", _("Read")
        WRITE = "write", _("Read and write")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(_("scope"), max_length=10, choices=Scope.choices, default=Scope.WRITE)
    created_at = SafeDateTimeField(default=timezone.now, editable=False)
    expires_at = SafeDateTimeField(_("expires"), null=True, blank=True)
    last_used_at = SafeDateTimeField(null=True, blank=True, editable=False)
    revoked_at = SafeDateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
