"""Template helpers for the admin's account pages (the delete confirmation)."""

from django import template

from portal.config.containers import user_volume

register = template.Library()


@register.filter
def home_volume(username: str) -> str:
    """The Docker volume that holds the user's home (the name DockerSpawner gives it)."""
    return user_volume(username)


@register.filter
def as_list(value) -> list:
    """One object as a list, so a template written for several (the bulk delete) shows one too."""
    return [value]
