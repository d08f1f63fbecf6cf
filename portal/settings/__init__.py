"""Settings package: `base` holds what every profile shares; `dev`, `prod` and `test` adjust it.

`APP_PROFILE` in `.env` (`dev` by default, or `prod`) picks the module through `module_for_profile`.
"""


def module_for_profile() -> str:
    from portal.config import load
    from portal.config.env import EnvError

    try:
        return f"portal.settings.{load().profile}"
    except EnvError as exc:
        raise SystemExit(str(exc)) from None
