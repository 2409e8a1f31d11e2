pytest_plugins = ["tests.infra"]
