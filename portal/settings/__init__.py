"""Settings package: `base` holds what every profile shares; `dev`, `prod` and `test` adjust it.

`APP_PROFILE` in `.env` (`dev` by default, or `prod`) picks the module through `module_for_profile`.
"""

PROFILES = {"dev", "prod"}


def module_for_profile() -> str:
    from portal.envfile import Env

    profile = Env().get("APP_PROFILE", "dev").strip().lower()
    if profile not in PROFILES:
        raise SystemExit(f"APP_PROFILE must be one of {sorted(PROFILES)}, not {profile!r} (see .env)")
    return f"portal.settings.{profile}"
