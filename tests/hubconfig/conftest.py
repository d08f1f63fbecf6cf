import pytest


@pytest.fixture(autouse=True)
def _hub_var_dir(private_var_dir):
    """Every hub test applies the config against its own var/ (tests/conftest.py), never the repo's."""
