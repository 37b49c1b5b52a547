"""Helpers for the report tests: schema validators, a headless Chromium runner, a fleet writer."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import jsonschema
import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

SARIF_SCHEMA = HERE.parent / "schemas" / "sarif-schema-2.1.0.json"  # the one copy, shared with tests/ansible_lint
FLEET_SCHEMA = REPO / "schemas" / "fleet-report.schema.json"


def fleet_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(FLEET_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SARIF_SCHEMA.read_text())
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def errors_of(validator: jsonschema.protocols.Validator, doc: Any) -> list:
    return ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(doc)]


def write_fleet(fleet: Dict[str, Dict[str, Any]], dest: Path, **kwargs: Any) -> Dict[str, Any]:
    model = report.build_fleet(fleet, **kwargs)
    written, errors = renderers.write_reports(model, str(dest))
    assert not errors, errors
    assert set(written) == set(renderers.FORMATS)
    return model


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium_binary() -> Optional[str]:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium once with a throwaway profile (removed afterwards)."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-test-host.sh installs it)")
    profile = tempfile.mkdtemp(prefix="nsg-chromium-")
    try:
        return subprocess.run([binary, *CHROMIUM_FLAGS, "--user-data-dir=" + profile, *args, url],
                              capture_output=True, text=True, timeout=timeout, env=dict(os.environ, HOME=profile), check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
