"""Password reset by e-mail, on the portal's own pages; without a mail server, a page that says "ask staff".

Rules:
- The same answer whether or not an account uses the address: "if an account uses it, a link is on its
  way". When no account matches, the mail server is still contacted (connection opened and closed), so a
  dead server gives the same failure answer for every address.
- When the mail server fails the student is told so (never a false "sent"), and staff find it in the admin
  (staff.MailFailure).
- Limited per e-mail address and per account (several addresses can be typed for one account: differently
  cased, with spaces), PASSWORD_RESET_RATE_LIMIT for both, and per client address,
  PASSWORD_RESET_IP_RATE_LIMIT (accounts/ratelimits.py: every request counts, sent or not).
- Each request is in the record of who did what: the accounts the address matched and whether the mail went,
  never the address typed (it may be someone else's) nor the link.
- The link in the mail uses PUBLIC_URL, not the request's Host header, so a forged Host cannot make the
  portal mail a link to someone else's site.
"""

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.core.mail import EmailMultiAlternatives
from django.shortcuts import render
from django.template import loader
from django.utils.translation import gettext_lazy as _

from accounts.ratelimits import RequestLimit, client_address
from audit.kinds import Kind
from audit.records import record, record_many
from staff import mail

PURPOSE = "password_reset"


def _email(request) -> str:
    return " ".join(request.POST.get("email", "").split()).lower()[:254]


def email_key(request):
    return "email:" + _email(request)


def account_key(request):
    email = _email(request)
    pks = get_user_model().objects.filter(email__iexact=email).order_by("pk").values_list("pk", flat=True)[:1]
    # No account: count under the address, so the limit bites at the same point either way.
    return f"user:{pks[0]}" if pks else "no-account:" + email


class PasswordResetForm(auth_forms.PasswordResetForm):
    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
        help_text=_("The address you gave when you signed up."),
    )

    def save(self, **kwargs):
        """Send the mails; True when every one went out (or none was due and the server answers)."""
        self.failed = False
        self.matched = False
        self.accounts = []
        super().save(**kwargs)
        if not self.matched:
            self.failed = not mail.check_server(PURPOSE, self.cleaned_data["email"])
        return not self.failed

    def send_mail(
        self, subject_template_name, email_template_name, context, from_email, to_email, html_email_template_name=None
    ):
        self.matched = True
        self.accounts.append(context["user"])
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        message = EmailMultiAlternatives(subject, body, from_email, [to_email])
        if not mail.send(message, PURPOSE, user=context.get("user")):
            self.failed = True


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def get_extra_email_context(self):
        # The mail's link starts with PUBLIC_URL (see the module rules).
        return {"portal_url": settings.PUBLIC_URL}

    def form_valid(self, form):
        sent = form.save(
            use_https=self.request.is_secure(),
            token_generator=self.token_generator,
            from_email=self.from_email,
            email_template_name=self.email_template_name,
            subject_template_name=self.subject_template_name,
            request=self.request,
            extra_email_context=self.get_extra_email_context(),
        )
        self.record_request(form.accounts, sent)
        if not sent:
            form.add_error(
                None,
                _(
                    "The e-mail could not be sent: the mail server did not accept it. Please try again in a few "
                    "minutes, or ask your teacher for a set-password link."
                ),
            )
            return self.render_to_response(self.get_context_data(form=form, mail_failed=True), status=503)
        return super(auth_views.PasswordResetView, self).form_valid(form)  # FormView: redirect to "done"

    def record_request(self, accounts, sent: bool) -> None:
        if accounts:
            record_many(Kind.PASSWORD_RESET_REQUESTED, accounts, request=self.request, sent=sent)
        else:  # an address no account uses: that someone asked, nothing about the address
            record(Kind.PASSWORD_RESET_REQUESTED, request=self.request, matched=False, sent=sent)


LIMIT = RequestLimit(
    "password-reset",
    [
        (email_key, "PASSWORD_RESET_RATE_LIMIT"),
        (account_key, "PASSWORD_RESET_RATE_LIMIT"),
        (client_address, "PASSWORD_RESET_IP_RATE_LIMIT"),
    ],
)
_view = LIMIT(PasswordResetView.as_view())


def password_reset(request):
    if not settings.EMAIL_ENABLED:
        return render(request, "registration/password_reset_unavailable.html")
    return _view(request)
