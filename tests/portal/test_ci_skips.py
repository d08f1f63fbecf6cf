"""The suite's own rule: in CI a skipped test is a failed one, whatever skipped it (the test's body or a
fixture), so a missing service never passes silently. Helpers such as tests/deploy/conftest.py's
`require_tool` only call `pytest.skip`; tests/conftest.py's `pytest_runtest_makereport` does the rest."""

pytest_plugins = ["pytester"]

INNER_CONFTEST = "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n"

INNER_TESTS = """
import pytest

@pytest.fixture(scope="session")
def service():
    pytest.skip("the service is not running: start it")

def test_skips_in_its_body():
    pytest.skip("the tool is missing: install it")

def test_skips_in_a_fixture(service):
    pass

@pytest.mark.xfail(reason="a known bug")
def test_known_to_fail():
    assert False
"""


def run_inner(pytester, monkeypatch, ci: str):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(INNER_TESTS)
    return pytester.runpytest("-p", "no:django", "-p", "no:cacheprovider")


def test_in_ci_every_skip_fails_with_its_reason_and_an_xfail_stays_one(pytester, monkeypatch):
    result = run_inner(pytester, monkeypatch, "true")
    result.assert_outcomes(failed=1, errors=1, xfailed=1)  # a fixture's failure is an error
    result.stdout.fnmatch_lines(["*the tool is missing: install it*", "*the service is not running: start it*"])


def test_outside_ci_a_skip_stays_a_skip(pytester, monkeypatch):
    run_inner(pytester, monkeypatch, "").assert_outcomes(skipped=2, xfailed=1)
