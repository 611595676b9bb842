"""The committed stubs are exactly what tools/gen_stubs.py produces from pyvfio/uapi."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_stubs", ROOT / "tools" / "gen_stubs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_stubs"] = module
    spec.loader.exec_module(module)
    return module


def test_stubs_have_not_drifted() -> None:
    gen = load_generator()
    files = gen.generate()
    stale = [str(p.relative_to(ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
    assert stale == [], "run python3 tools/gen_stubs.py and commit the result"


def test_stub_types_struct_fields() -> None:
    text = (ROOT / "stubs" / "pyvfio" / "uapi" / "vfio.pyi").read_text()
    assert "class vfio_region_info(Struct):\n    argsz: int\n" in text
    assert "    areas: ctypes.Array[vfio_region_sparse_mmap_area]" in text
    assert "VFIO_IOMMU_MAP_DMA: int" in text
