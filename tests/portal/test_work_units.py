"""How ./test.sh's parallel workers share out the suite (tests/conftest.py `work_unit`): whole files, except the
tests on tests/e2e's shared stacks, which go by proxy so that each stack starts once. The collection itself
fails if the rule and the `stack` fixture ever disagree on a test."""

import pytest

from tests.conftest import work_unit


@pytest.mark.parametrize(
    ("nodeid", "unit"),
    [
        ("tests/e2e/test_origins.py::test_the_hub_answers_on_its_own_host_name[python]", "e2e-stack-python"),
        ("tests/e2e/test_origins.py::test_after_logging_out[node-jupyterlab]", "e2e-stack-node"),
        ("tests/e2e/test_oauth_provider.py::test_redirects[python-other-host]", "e2e-stack-python"),
        # an e2e test with a stack of its own, and another folder's parameter that happens to be named python
        ("tests/e2e/test_client_address.py::test_a_local_process_forging_headers", "tests/e2e/test_client_address.py"),
        ("tests/hubconfig/test_proxy.py::test_routes[python]", "tests/hubconfig/test_proxy.py"),
        ("tests/accounts/test_lifecycle.py::test_x", "tests/accounts/test_lifecycle.py"),
    ],
)
def test_files_go_whole_and_the_shared_stacks_tests_by_proxy(nodeid, unit):
    assert work_unit(nodeid) == unit
