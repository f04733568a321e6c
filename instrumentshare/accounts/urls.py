from django.urls import path

from . import oidc, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    # Login through the institution (OpenID Connect): 404 unless OIDC_RP_CLIENT_ID is set.
    path("oidc/authenticate/", oidc.authenticate, name="oidc_authenticate"),
    path("oidc/callback/", oidc.callback, name="oidc_callback"),
    path("me/", views.account, name="account"),
    path("me/tokens/<int:token_id>/revoke/", views.revoke_token, name="revoke_token"),
]
