"""Configuration, Django-free: what `.env` says, read once per process and handed out as one typed `Config`.

Rules:
- Every key `.env` may hold is declared once, with its type, default per profile, secrecy and doc, in
  `table.py`; `.env.example` and the docs' reference are generated from it (`python -m portal.config example`,
  docs/_ext/configref.py). A key in `.env` that the table lacks stops start-up with the nearest known name.
- `.env` (with the process environment over it) is read by `env.Env` and by nothing else; `load()` reads it
  once per process (functools.cache). The `Config` it returns is the only thing handed on: the settings are
  built from it, the hub's `apply_config(c, config)` receives it, gunicorn's config, run.sh and the operators'
  commands use it. Its sections are parsed on first use and kept, so nothing parses a value twice.
- Sections: `topology` (the two origins and every URL), `containers` (the users' containers), `swarm`,
  `course` (hand-outs and hand-ins), `dataset` (what notebooks query), `mail`, `hub` (JupyterHub's settings), `web`
  (the portal's process), `limits` (guesses and requests), `accounts` (what bootstrap makes), `audit` (the record
  of who did what), `deploy` (the production files), `secrets`.
- `keys` makes the OIDC key; `logscrub` and `filemodes` are the two rules the portal, the hub and the commands
  share about logs and file modes; `placeholders` tells a real secret from an example value.
- Importing any of it writes nothing: secrets are made by `python -m portal.config prepare` (run.sh does it).
- Nothing here imports Django, so `hubconfig/` can use all of it. Tests build `Config(Env({...}))`.
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

    def replace(self, **values: str) -> Config:
        """The same configuration with some keys set otherwise (a stand-in while errors are collected)."""
        return Config(Env({**self.env.values, **values}))

    @cached_property
    def topology(self):
        from portal.config import topology

        return topology.from_env(self.env)

    @cached_property
    def containers(self):
        from portal.config import containers

        return containers.from_env(self.env)

    @cached_property
    def swarm(self):
        from portal.config import swarm

        return swarm.from_env(self.env)

    @cached_property
    def course(self):
        from portal.config import course

        return course.from_env(self.env)

    @cached_property
    def dataset(self):
        from portal.config import dataset

        return dataset.from_env(self.env)

    @cached_property
    def mail(self):
        from portal.config import mail

        return mail.from_env(self.env)

    @cached_property
    def hub(self):
        from portal.config import sections

        return sections.hub_from_env(self.env)

    @cached_property
    def web(self):
        from portal.config import sections

        return sections.web_from_env(self.env)

    @cached_property
    def limits(self):
        from portal.config import sections

        return sections.limits_from_env(self.env)

    @cached_property
    def accounts(self):
        from portal.config import sections

        return sections.accounts_from_env(self.env, self.mail.enabled)

    @cached_property
    def audit(self):
        from portal.config import sections

        return sections.audit_from_env(self.env)

    @cached_property
    def deploy(self):
        from portal.config import sections

        return sections.deploy_from_env(self.env)

    @cached_property
    def secrets(self):
        from portal.config import sections

        return sections.Secrets(self.env)


@functools.cache
def load() -> Config:
    """This process's configuration, parsed from `.env` on the first call."""
    return Config(Env())
