from django.contrib import admin
from django.urls import include, path
from oauth2_provider import urls as oauth2_urls
from oauth2_provider import views as oauth2_views

from accounts import views
from accounts.password_views import SetPasswordView

# Only what an authorization-code + OIDC provider needs. DOT's self-service application pages, device flow
# and dynamic client registration stay off: staff register clients in the admin.
oauth2_patterns = (
    [
        path("authorize/", oauth2_views.AuthorizationView.as_view(), name="authorize"),
        path("token/", oauth2_views.TokenView.as_view(), name="token"),
        path("revoke_token/", oauth2_views.RevokeTokenView.as_view(), name="revoke-token"),
        *oauth2_urls.oidc_urlpatterns,
    ],
    "oauth2_provider",
)

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/set-password/<uidb64>/<token>/", SetPasswordView.as_view(), name="set_password"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("o/", include(oauth2_patterns)),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
]

handler404 = "portal.errors.not_found"
handler500 = "portal.errors.server_error"
