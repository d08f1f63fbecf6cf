"""The error handler tells a database outage (503, translated, Retry-After) from a bug (500)."""

from __future__ import annotations

import sqlite3
from http import HTTPStatus

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from django.utils import translation

from portal import errors


def handled(exc: BaseException, language: str = "zh-hans"):
    request = RequestFactory().post("/accounts/signup/")
    with translation.override(language):
        try:
            raise exc
        except BaseException:
            return errors.server_error(request)  # as Django calls it: while the exception is handled


def test_a_bug_still_gets_the_500_page():
    response = handled(ValueError("a bug"))
    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert "Retry-After" not in response


@pytest.mark.parametrize("language,text", [("zh-hans", "暂时无法使用"), ("en", "cannot reach its database")])
def test_a_database_outage_gets_a_translated_503_page_with_retry_after(language, text):
    response = handled(OperationalError("(2002, \"Can't connect to server on '127.0.0.1'\")"), language)
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert text in response.content.decode() and response["Retry-After"] == "60"
    assert 'href="/accounts/signup/"' in response.content.decode()


def test_a_full_disk_says_so():
    try:
        raise sqlite3.OperationalError("database or disk is full")
    except sqlite3.OperationalError as cause:
        exc = OperationalError(str(cause))
        exc.__cause__ = cause
    response = handled(exc, "en")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "disk is full" in response.content.decode() and "Nothing was saved" in response.content.decode()
