"""The supported-ops table in README.md is generated from the registry and must be current."""
from __future__ import annotations

import re

from tinyc.opstable import table

from .conftest import ROOT


def test_readme_ops_table_is_current():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- ops table:.*?-->\n(.*?)<!-- end ops table -->", readme, re.S)
    assert m, "README.md lost its ops table markers"
    assert m.group(1) == table(), "regenerate with: python -m tinyc.opstable --write README.md"
