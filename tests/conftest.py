"""Test-wide setup: make the tests folder importable for its small shared helpers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
