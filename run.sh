#!/usr/bin/env bash
# Run the whole system on its embedded defaults (SQLite, in-process cache, no Nginx):
# installs what is missing, creates .env on first run, migrates, then serves with gunicorn.
# PORT comes from the environment, else from .env, else 8000.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

ensure_apt_packages "${BASE_PACKAGES[@]}"
ensure_venv
ensure_env_file
mkdir -p var/log
prepare_portal

PORT=$(env_value PORT 8000)
export PORT
admin_user=$(env_value ADMIN_USERNAME cfps-admin)
invite_codes=$(.venv/bin/python -c 'from portal.envfile import Env
codes = ["".join(c.split()).upper() for c in Env().list("INVITE_CODES", sep=";")]
print(" ".join(codes) or "(none in .env; make one with: .venv/bin/python manage.py create_invite)")')
bind=$(env_value BIND "")
if [[ -n "$bind" ]]; then
    portal_url="$bind (from BIND), path /"
    admin_url="path /admin/"
else
    portal_url="http://127.0.0.1:$PORT/"
    admin_url="http://127.0.0.1:$PORT/admin/"
fi

cat <<EOF

  CFPS portal:   $portal_url
  Invite codes:  $invite_codes
  Admin:         $admin_url  (user $admin_user)
  Stop with Ctrl-C.

EOF
exec .venv/bin/gunicorn -c deploy/gunicorn.conf.py portal.wsgi
