"""ABI test, kind (a): every fact of the golden file against the Python mirror.

The golden file was compiled from Linux 7.3.4's own headers with gcc on x86_64.
Each check gathers *all* mismatches before failing, so one run shows the whole
damage rather than the first wrong offset.
"""

from __future__ import annotations

import ctypes
import enum
import re

import pytest

from abi_facts import GOLDEN, MODULES, find, golden_field_facts, python_facts, read_facts, struct_classes
from pyvfio.uapi.ioctl import ioc_decode

FACTS = read_facts(GOLDEN.read_text())


def names(kind: str) -> list[str]:
    return [k.split(" ", 1)[1] for k in FACTS if k.startswith(kind + " ")]


def test_golden_counts_match_spec() -> None:
    # SPEC.md: 56 ioctls, 90 structs/unions, 381 fields, 258 constants (+56 ioctl values), 5 strings.
    assert len(names("ioctl")) == 56
    assert len(names("strconst")) == 5
    assert len(names("const")) == 258 + 56
    assert len([k for k in FACTS if k.endswith(" sizeof")]) == 90
    assert len([k for k in FACTS if k.endswith(" offsetof")]) == 381


def test_every_constant_value() -> None:
    bad = []
    for name in names("const"):
        try:
            value = find(name)
        except KeyError:
            bad.append(f"{name}: missing")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value != int(FACTS[f"const {name}"]):
            bad.append(f"{name}: {value!r} != {FACTS[f'const {name}']}")
    assert bad == []


def test_every_string_constant() -> None:
    bad = [n for n in names("strconst") if find(n) != FACTS[f"strconst {n}"].strip('"')]
    assert bad == []


def test_every_ioctl_number_and_plain_io_encoding() -> None:
    table = {d.name: d for m in MODULES for d in m.IOCTLS}
    assert sorted(table) == sorted(names("ioctl"))
    bad = []
    for name in names("ioctl"):
        request = int(FACTS[f"ioctl {name}"])
        if find(name) != request or table[name].request != request:
            bad.append(name)
        fields = ioc_decode(request)
        # All VFIO/iommufd ioctls are _IO(';', nr): no direction, no size.
        if (fields.direction, fields.size, fields.type) != (0, 0, ord(";")):
            bad.append(f"{name}: not plain _IO")
    assert bad == []


def test_every_struct_size_alignment_and_field() -> None:
    classes = {cls.__name__: cls for cls in struct_classes()}
    golden_structs = [k.split(" ")[1] for k in FACTS if k.endswith(" sizeof")]
    assert sorted(classes) == sorted(golden_structs)
    computed = python_facts()
    bad = []
    for name in golden_structs:
        for attr in ("sizeof", "alignof"):
            key = f"struct {name} {attr}"
            if computed.get(key) != FACTS[key]:
                bad.append(f"{key}: {computed.get(key)} != {FACTS[key]}")
    golden_fields = golden_field_facts(FACTS)
    python_fields = {k: v for k, v in computed.items() if k.endswith(" _")}
    for key, value in golden_fields.items():
        if python_fields.get(key) != value:
            bad.append(f"{key[:-2]}: {python_fields.get(key)} != {value}")
    for key in python_fields.keys() - golden_fields.keys():
        bad.append(f"{key[:-2]}: not a field of the kernel struct")
    assert bad == []


KERNEL_NAME = re.compile(r"^(__)?(VFIO|IOMMU|vfio_|iommu)")


def test_no_extra_kernel_names() -> None:
    """Every public name spelled like a kernel name is one: no invented constants or structs."""
    known = {k.split(" ", 1)[1].split(" ")[0].split(".")[0] for k in FACTS}
    extra = []
    for module in MODULES:
        for attr, value in vars(module).items():
            if not KERNEL_NAME.match(attr) or attr in known:
                continue
            if type(value) in (int, str):
                extra.append(attr)
            elif isinstance(value, type) and issubclass(value, (ctypes.Structure, ctypes.Union)):
                extra.append(attr)
    assert extra == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_ioctl_table_in_header_order(module: object) -> None:
    order = [n for n in names("ioctl") if hasattr(module, n)]
    assert [d.name for d in module.IOCTLS] == order  # type: ignore[attr-defined]


def test_enum_families_mirror_constants() -> None:
    """Each IntFlag/IntEnum member has the value of the module constant it displays."""
    bad = []
    for module in MODULES:
        consts = {v: k for k, v in vars(module).items() if type(v) is int and KERNEL_NAME.match(k)}
        for attr, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, enum.Enum):
                for member in value:
                    if not isinstance(member.value, int):
                        bad.append(f"{attr}.{member.name}")
                    elif member.value not in consts and member.value != 0:
                        bad.append(f"{attr}.{member.name}={member.value}")
    assert bad == []
