"""``{% institution_login as login %}``: the institution's login for the login page, or None when it is off."""

from django import template
from django.urls import reverse

from instrumentshare.accounts import oidc

register = template.Library()


@register.simple_tag
def institution_login():
    if not oidc.enabled():
        return None
    return {"url": reverse("accounts:oidc_authenticate"), "name": oidc.provider_name()}
