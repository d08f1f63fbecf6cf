from django.contrib import admin
from django.urls import include, path
from oauth2_provider import urls as oauth2_urls
from oauth2_provider import views as oauth2_views

from accounts import oauth, otp_views, password_reset, ratelimits, views
from accounts.password_views import PasswordChangeView, PasswordResetConfirmView, SetPasswordView
from course import admin_views as course_admin
from staff import views as staff_views

# Only what an authorization-code + OIDC provider needs. DOT's self-service application pages, device flow
# and dynamic client registration stay off: staff register clients in the admin. The token and userinfo
# endpoints have request limits (accounts/ratelimits.py).
oauth2_patterns = (
    [
        path("authorize/", oauth.AuthorizationView.as_view(), name="authorize"),
        path("token/", ratelimits.OAUTH_TOKEN(oauth2_views.TokenView.as_view()), name="token"),
        path("revoke_token/", oauth2_views.RevokeTokenView.as_view(), name="revoke-token"),
        path("userinfo/", ratelimits.OAUTH_USERINFO(oauth2_views.UserInfoView.as_view()), name="user-info"),
        *[pattern for pattern in oauth2_urls.oidc_urlpatterns if pattern.name != "user-info"],
    ],
    "oauth2_provider",
)

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/waiting/", views.awaiting_approval, name="awaiting_approval"),
    path("accounts/otp/", otp_views.verify, name="otp_verify"),
    path("accounts/otp/setup/", otp_views.setup, name="otp_setup"),
    path("accounts/otp/backup-codes/", otp_views.backup_codes, name="otp_backup_codes"),
    path("accounts/password_reset/", password_reset.password_reset, name="password_reset"),
    path(
        "accounts/set-password/<uidb64>/<token>/",
        ratelimits.SET_PASSWORD(SetPasswordView.as_view()),
        name="set_password",
    ),
    # Django's own password pages, with accounts.password_forms and the set-password pages' limits (before the
    # include that also names them).
    path("accounts/password_change/", PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        ratelimits.SET_PASSWORD(PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("o/", include(oauth2_patterns)),
    # Before admin.site.urls: the admin's login page, through the portal's login throttle (accounts/views.py).
    path("admin/login/", views.admin_login, name="admin_login"),
    path("admin/usage/", staff_views.usage, name="staff_usage"),
    path("admin/usage/stop/", staff_views.stop_server, name="staff_stop_server"),
    path("admin/classes/", course_admin.overview_index, name="course_overview_index"),
    path("admin/classes/<int:group_pk>/", course_admin.overview_page, name="course_overview"),
    path("admin/classes/<int:group_pk>/grades.csv", course_admin.grades_export, name="course_grades_export"),
    path("admin/classes/<int:group_pk>/warm-up/", course_admin.warm_up_page, name="course_warm_up"),
    path("admin/classes/warm-ups/<int:job_pk>/", course_admin.warm_up_progress, name="course_warm_up_progress"),
    path("admin/", admin.site.urls),
    path("api/announcements/", staff_views.announcements_json, name="announcements_json"),
    path("api/server/", views.server_state, name="server_state"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("course.urls")),
    path("", include("deploy.urls")),
]

handler404 = "portal.errors.not_found"
handler500 = "portal.errors.server_error"
