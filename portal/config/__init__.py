"""Configuration, Django-free: what `.env` says, read once per process and handed out as typed values.

Rules:
- `.env` (with the process environment over it) is read by `env.Env` and by nothing else; `load()` reads it
  once per process and keeps the result (functools.cache), so the settings, the hub's config, gunicorn's
  config, run.sh and the operators' commands all see the same values. Tests build an `Env({...})` of their
  own and pass it to the `from_env` functions.
- Each part has one module and one place per default: `topology` (the two origins and every URL), `containers`
  (the users' containers), `dataset` (what notebooks query), `mail`, `placeholders` (secrets that must not
  be example values); `keys` makes the OIDC key; `logscrub` and `filemodes` are the two rules the portal,
  the hub and the commands share about logs and file modes.
- Importing any of it writes nothing: secrets are made by `python -m portal.config prepare` (run.sh does it).
- Nothing here imports Django, so `hubconfig/` can use all of it.
"""

from __future__ import annotations

import functools
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
    def topology(self):
        from portal.config import topology

        return topology.from_env(self.env)

    @cached_property
    def containers(self):
        from portal.config import containers

        return containers.from_env(self.env)

    @cached_property
    def dataset(self):
        from portal.config import dataset

        return dataset.from_env(self.env)


@functools.cache
def load() -> Config:
    """This process's configuration, parsed from `.env` on the first call."""
    return Config(Env())
