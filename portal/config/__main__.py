"""`python -m portal.config STEP`:
    prepare    generate the missing secrets into var/secrets/ (run.sh and test.sh run it before anything imports
               the settings or the hub's config, which only read them)
    example    print .env.example as the key table makes it (`> .env.example` to write it)
A command of its own, not manage.py's: the settings cannot be imported before the secrets they read exist."""

import argparse
import sys

from portal.config import table
from portal.config.env import main as prepare

parser = argparse.ArgumentParser(prog="python -m portal.config")
parser.add_argument("step", choices=["prepare", "example"])
step = parser.parse_args().step
if step == "prepare":
    sys.exit(prepare(["prepare"]))
sys.stdout.write(table.render_env_example())
