"""Pages of sample submissions."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import Http404
from django.views.decorators.http import require_GET

from instrumentshare.accounts.models import User
from instrumentshare.core.errors import DomainError

from . import services
from .api import LINK_SALT, file_response


@require_GET
def signed_download(request, token: str):
    """A signed link from the API: valid for SUBMISSION_LINK_SECONDS, for the user it was made for, and
    only while that user may still see the request (a link outlives no access)."""
    try:
        data = signing.TimestampSigner(salt=LINK_SALT).unsign_object(token, max_age=settings.SUBMISSION_LINK_SECONDS)
        user = User.objects.get(pk=data["user"], is_active=True)
        attachment = services.attachment_for(user, int(data["file"]))
    except (signing.BadSignature, User.DoesNotExist, KeyError, TypeError, ValueError, DomainError) as error:
        raise Http404("No such file, or the link has expired.") from error
    return file_response(attachment)
