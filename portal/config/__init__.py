"""Configuration, Django-free: what `.env` says, read once per process and handed out as typed values.

Rules:
- `.env` (with the process environment over it) is read by `env.Env` and by nothing else; `load()` reads it
  once per process and keeps the result (functools.cache), so the settings, the hub's config, gunicorn's
  config, run.sh and the operators' commands all see the same values. Tests build an `Env({...})` of their
  own and pass it to the `from_env` functions.
- Each part has one module and one place per default: `topology` (the two origins and every URL), `containers`
  (the users' containers), `course` (hand-outs and hand-ins), `dataset` (what notebooks query), `mail`,
  `placeholders` (secrets that must not be example values); `keys` makes the OIDC key; `logscrub` and `filemodes` are the two rules the portal,
  the hub and the commands share about logs and file modes.
- Importing any of it writes nothing: secrets are made by `python -m portal.config prepare` (run.sh does it).
- Nothing here imports Django, so `hubconfig/` can use all of it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from functools import cached_property

from portal.config.env import Env


@dataclass(frozen=True)
class Config:
    env: Env

    @property
    def profile(self) -> str:
        return self.env.profile

    @property
    def prod(self) -> bool:
        return self.env.prod

    @cached_property
    def portal_workers(self) -> int:
        """gunicorn processes of the portal (GUNICORN_WORKERS). dev: 1, since its in-process cache counts the
        guesses and must see every request. prod: one per core, at least 2 (the counts are in Redis): each
        process has GUNICORN_THREADS threads, and a password check releases the GIL, so more processes than
        cores add memory (about 60 MB each) and, with a password check slot each, checks beyond the cores."""
        return self.env.int("GUNICORN_WORKERS", max(2, os.cpu_count() or 1) if self.prod else 1)

    @cached_property
    def password_checks_at_once(self) -> int:
        """Password checks running at once per portal process (PASSWORD_CHECKS_AT_ONCE, accounts/hashers.py):
        the cores shared out over the processes, at least 1, so a class's logins never run more checks at once
        than the machine has cores and pages keep a core's share."""
        return self.env.int("PASSWORD_CHECKS_AT_ONCE", max(1, (os.cpu_count() or 1) // max(1, self.portal_workers)))

    @cached_property
    def topology(self):
        from portal.config import topology

        return topology.from_env(self.env)

    @cached_property
    def containers(self):
        from portal.config import containers

        return containers.from_env(self.env)

    @cached_property
    def course(self):
        from portal.config import course

        return course.from_env(self.env)

    @cached_property
    def dataset(self):
        from portal.config import dataset

        return dataset.from_env(self.env)


@functools.cache
def load() -> Config:
    """This process's configuration, parsed from `.env` on the first call."""
    return Config(Env())
