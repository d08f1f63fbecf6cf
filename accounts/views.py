"""Thin views: forms hold the rules (see accounts.forms)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.debug import sensitive_post_parameters

from accounts import hub, oauth, ratelimits, sessions, throttle
from accounts.forms import LoginForm, SignupForm, StaffLoginForm


def home(request):
    return render(request, "home.html", {"jupyterhub_url": settings.JUPYTERHUB_URL})


SERVER_STATES = {
    "none": _lazy("Your server is not running. Opening JupyterLab starts it."),
    "starting": _lazy("Your server is starting…"),
    "ready": _lazy("Your server is ready."),
    "stopping": _lazy("Your server is stopping."),
    "unknown": _lazy("The state of your server is not known right now."),
}


@login_required
@ratelimits.SERVER_STATE
def server_state(request):
    """The state of one's own server, for the home page's script (static/js/server-state.js): the hub is asked
    as the portal's service, always about the logged-in user and no one else; a hub that does not answer within
    two seconds gives "unknown" (accounts/hub.py server_state)."""
    try:
        state = hub.server_state(request.user.username)
    except hub.HubError:
        state = "unknown"
    response = JsonResponse({"state": state, "label": str(SERVER_STATES[state])})
    response["Cache-Control"] = "no-store"
    return response


def _safe_next(request):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return ""


@sensitive_post_parameters("password1", "password2")
def signup(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request) or "home")
    # Wrong invite codes are limited per address; everything else about sign-up is not (accounts/throttle.py).
    attempt = throttle.signup_attempt(request) if request.method == "POST" else None
    if attempt and (refused := attempt.refusal()):
        return refused
    # Bind on every POST, even an empty one, so the student sees "required" errors rather than a blank form.
    form = SignupForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        user = form.save()
        if user is not None and not user.is_active:  # made with a code that needs approval
            return redirect("awaiting_approval")
        if user is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_safe_next(request) or "home")
    if attempt and throttle.is_wrong_invite_code(form) and (refused := attempt.failed()):
        return refused
    return render(request, "registration/signup.html", {"form": form, "next": _safe_next(request)})


class LoginView(throttle.LoginThrottleMixin, auth_views.LoginView):
    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        if request.method == "GET" and request.user.is_authenticated:  # redirect_authenticated_user: on to next
            return oauth.authorize_at_once(request, response)
        return response

    def form_valid(self, form):
        response = super().form_valid(form)
        sessions.started(self.request, shared_pc=form.cleaned_data.get("shared_pc", False))
        # Coming from the hub: its authorization is answered in this response (accounts/oauth.py), or, for a
        # staff session without its second factor, the code page is (accounts/otp.py).
        return oauth.authorize_at_once(self.request, response)

    def form_invalid(self, form):
        if form.has_error("__all__", "awaiting_approval"):
            return awaiting_approval(self.request)
        return super().form_invalid(form)


def awaiting_approval(request):
    return render(request, "registration/awaiting_approval.html")


login_view = LoginView.as_view(authentication_form=LoginForm, redirect_authenticated_user=True)


class StaffLoginView(throttle.LoginThrottleMixin, auth_views.LoginView):
    template_name = "admin/login.html"
    authentication_form = StaffLoginForm

    def form_valid(self, form):
        response = super().form_valid(form)  # on to the admin, where the second factor is asked (accounts/otp.py)
        sessions.started(self.request, shared_pc=False)
        return response


def admin_login(request):
    """/admin/login/: the Django admin's login page (its template, its staff-only form), through the same
    guess limits as the portal's login: the same counters (a name's wrong passwords here and at
    /accounts/login/ add up), the same 429 page, and a locked attempt refused before its password is checked.
    Django's own AdminSite.login, which it replaces (see portal/urls.py), counts nothing."""
    site = admin.site
    if request.method == "GET" and site.has_permission(request):
        return redirect("admin:index")
    context = {
        **site.each_context(request),
        "title": _("Log in"),
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse("admin:index")
    request.current_app = site.name
    return StaffLoginView.as_view(extra_context=context)(request)


class LogoutView(auth_views.LogoutView):
    """Django's POST logout, which then ends the hub session too, and is safe to reach by GET.

    After the portal session ends, the browser goes on to the hub's logout (on the hub's own host), which
    clears the hub's cookies and comes back through the portal's OpenID Connect end-session endpoint to the
    portal's home: on a shared classroom PC the next person lands in neither account.

    A GET that logs out is normally a CSRF hole (any site could log you out with an <img>), so a GET logs out
    only when the browser says no other site started it: `Sec-Fetch-Site: same-origin` (a link on the
    portal) or `none` (typed or bookmarked). Anything else, including old browsers without the header, gets
    a one-button confirmation page instead of Django's bare 405. (The hub's own logout does not come here: it
    uses the end-session endpoint, with the id_token as proof.)
    """

    http_method_names = ["get", "post", "options"]

    def get_success_url(self):
        return settings.TOPOLOGY.hub_logout_url

    def get(self, request, *args, **kwargs):
        if request.headers.get("Sec-Fetch-Site") in {"same-origin", "none"}:
            return self.post(request, *args, **kwargs)
        return render(request, "registration/logout_confirm.html", {"next": _safe_next(request)})
