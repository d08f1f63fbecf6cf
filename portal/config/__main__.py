"""`python -m portal.config prepare`: generate the missing secrets into var/secrets/ (run.sh and test.sh
run it before anything imports the settings or the hub's config, which only read them)."""

import sys

from portal.config.env import main

sys.exit(main())
