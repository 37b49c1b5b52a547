"""Register the project's pytest markers for ``ansible-test units``.

``ansible-test units`` runs pytest with its own configuration file and ``--strict-markers``, so the
markers declared in the collection's ``pytest.ini`` (``root``, ``runtime``, ``slow``) are unknown
there and every test file using one fails to collect. They are read from ``pytest.ini`` rather than
repeated here; under plain pytest they are simply declared twice.
"""
from __future__ import annotations

import configparser
import os

PYTEST_INI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pytest.ini")


def pytest_configure(config):
    parser = configparser.ConfigParser()
    parser.read(PYTEST_INI)
    for line in parser.get("pytest", "markers", fallback="").splitlines():
        if line.strip():
            config.addinivalue_line("markers", line.strip())
