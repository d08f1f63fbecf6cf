"""Where students' files and servers live, Django-free, shared by the hub (at spawn time), the operators'
commands and the course worker: the Docker volumes (`volumes`), what keeps the users' containers apart (their
network and disk quota, `isolation`) and the shared read-only data folder (`datafolder`). It reads only the
typed configuration (`portal.config`); `pyproject.toml`'s import contracts keep it so."""
