"""Signals the accounts app sends about sign-in events that Django's own signals (`user_logged_in`,
`user_login_failed`, `user_logged_out`) do not cover, for whoever keeps a record of them.

Sending one never makes the action fail: receivers run after the change is made, and no argument holds a
secret (a code, a key, a backup code, a token). `request` is None when a management command sent it.

- `second_factor_enrolled(user, request)`: a staff member confirmed a new authenticator with a correct code
  (their backup codes were made at the same time).
- `second_factor_verified(user, request, method)`: a staff session was verified; `method` is "totp" (a code
  from the app) or "backup" (a backup code, now used up).
- `second_factor_failed(user, request, locked)`: a wrong code (enrolment or login), counted as a failed
  guess (accounts/throttle.py); `locked` is True when the attempt was refused because of earlier ones.
- `second_factor_reset(user, actor, request, devices)`: a staff member's devices were removed so that they
  enrol again (a lost phone); `actor` is the superuser who did it, None for `manage.py reset_otp`;
  `devices` how many were removed.
- `session_idled_out(user, request, shared_pc)`: a session ended because it was idle too long
  (accounts/sessions.py); `shared_pc` when it was a 这是公共电脑 login, whose hub tokens were then revoked.
"""

from django.dispatch import Signal

second_factor_enrolled = Signal()
second_factor_verified = Signal()
second_factor_failed = Signal()
second_factor_reset = Signal()
session_idled_out = Signal()
