"""The record of who did what (Keycloak's login and admin events are the model): logins, passwords, staff and
roles, the account lifecycle, roster imports, invite codes, course jobs. Superusers read it in the admin.

- `kinds.Kind`: what can be recorded. Adding a kind is one line there (its label is translated in the Chinese
  catalogue); the database stores the value, so no migration is needed.
- `records.record(kind, actor=None, subject=None, request=None, **detail)`: the one way to write an entry. It
  never raises and costs one INSERT; `receivers.py` calls it for Django's and the accounts' signals, the few
  places that act call it themselves.
- `retention.prune()`: entries older than AUDIT_RETENTION_DAYS go; the course worker runs it once a day.
"""
