"""Secrets never reach the portal's logs (portal/config/logscrub.py): a table of what is masked and what is kept."""

import logging

import pytest

from portal.config.logscrub import ScrubbingLogger, ScrubSecretsFilter, scrub

CASES = [
    ("GET /o/userinfo/?access_token=TOK1 HTTP/1.1", "GET /o/userinfo/?access_token=[secret] HTTP/1.1"),
    (
        "http://localhost:8000/jupyter/hub/oauth_callback?code=C0DE&state=ST4TE",
        "http://localhost:8000/jupyter/hub/oauth_callback?code=[secret]&state=[secret]",
    ),
    (
        "GET /o/authorize/?response_type=code&client_id=jupyterhub&state=S&code_challenge=CC HTTP/1.1",
        "GET /o/authorize/?response_type=code&client_id=jupyterhub&state=[secret]&code_challenge=[secret] HTTP/1.1",
    ),
    (  # a URL inside a URL, percent-encoded
        "/accounts/login/?next=/o/authorize/%3Fclient_id%3Djupyterhub%26state%3DS1%26scope%3Dopenid",
        "/accounts/login/?next=/o/authorize/%3Fclient_id%3Djupyterhub%26state%3D[secret]%26scope%3Dopenid",
    ),
    ("POST /o/token/?client_secret=S3CR3T HTTP/1.1", "POST /o/token/?client_secret=[secret] HTTP/1.1"),
    ("GET /o/logout/?id_token_hint=eyJ.eyJ.sig HTTP/1.1", "GET /o/logout/?id_token_hint=[secret] HTTP/1.1"),
    ("GET /accounts/reset/MQ/c4x2-0123abcd/ HTTP/1.1", "GET /accounts/reset/MQ/[secret]/ HTTP/1.1"),
    ("GET /accounts/set-password/MQ/c4x2-0123abcd/ HTTP/1.1", "GET /accounts/set-password/MQ/[secret]/ HTTP/1.1"),
    # kept as they are
    ("GET /accounts/reset/MQ/set-password/ HTTP/1.1", "GET /accounts/reset/MQ/set-password/ HTTP/1.1"),
    ("GET /?lang=en HTTP/1.1", "GET /?lang=en HTTP/1.1"),
    ("GET /admin/accounts/user/?q=alice HTTP/1.1", "GET /admin/accounts/user/?q=alice HTTP/1.1"),
]


@pytest.mark.parametrize(("line", "logged"), CASES)
def test_secret_values_are_masked_and_the_rest_kept(line, logged):
    assert scrub(line) == logged


def test_django_log_records_are_scrubbed():
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Bad Request: %s", ("/o/x?code=1",), None
    )
    ScrubSecretsFilter().filter(record)
    assert record.getMessage() == "Bad Request: /o/x?code=[secret]"


def test_gunicorn_access_log_atoms_are_scrubbed():
    from types import SimpleNamespace

    from gunicorn.config import Config

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/o/userinfo/?access_token=TOK",
        "PATH_INFO": "/o/userinfo/",
        "QUERY_STRING": "access_token=TOK",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": "http://localhost/jupyter/hub/oauth_callback?code=C",
        "REMOTE_ADDR": "127.0.0.1",
    }
    response = SimpleNamespace(status="400 Bad Request", headers=[], sent=0)
    atoms = ScrubbingLogger(Config()).atoms(
        response, SimpleNamespace(headers=[]), environ, SimpleNamespace(seconds=0, microseconds=1)
    )
    assert atoms["r"] == "GET /o/userinfo/?access_token=[secret] HTTP/1.1"
    assert atoms["q"] == "access_token=[secret]"
    assert atoms["f"] == "http://localhost/jupyter/hub/oauth_callback?code=[secret]"
