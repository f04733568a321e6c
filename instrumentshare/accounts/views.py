from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from instrumentshare.core.errors import DomainError
from instrumentshare.core.pages import attempt

from . import queries, services
from .forms import TokenForm


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def account(request):
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _token, new_token = services.create_api_token(
                user=request.user, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"]
            )
        except DomainError as error:
            form.add_error(None, error.detail)
        else:
            messages.success(request, _("Token created. Copy it now: it will not be shown again."))
            form = TokenForm()
    context = {
        "form": form,
        "new_token": new_token,
        "tokens": request.user.api_tokens.order_by("-created_at"),
        "memberships": queries.memberships_of(request.user),
        "roles": queries.roles_of(request.user),
    }
    return render(request, "accounts/account.html", context)


@login_required
@require_POST
def revoke_token(request, token_id: int):
    # someone else's token is a 404, as if it did not exist
    attempt(request, lambda: services.revoke_api_token(user=request.user, token_id=token_id), _("Token revoked."))
    return redirect("accounts:account")


def lockout_response(request, original_response=None, credentials=None):
    """django-axes calls this for a locked-out login: JSON on the API, the page elsewhere; always 429."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    if request.path.startswith("/api/"):
        response = JsonResponse({"code": "locked_out", "detail": f"Too many failed logins: try again in {minutes} "
                                 "minutes.", "retry_after": minutes * 60}, status=429)
    else:
        response = render(request, "accounts/locked_out.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
