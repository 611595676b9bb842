"""Capability chain walking: well-formed chains, and every way a chain can lie (loops, bad pointers, truncation).

Configs are built by hand here, byte by byte, so each adversarial case is exactly the lie it names.  The
walkers must answer in bounded time with a :class:`CapabilityChainError` whose message names the bad link
and whose ``partial`` keeps what was walked before it.
"""

from __future__ import annotations

import random
import time

import pytest

from pyvfio.pci import caps as C
from pyvfio.uapi import pci_regs as R


def config_with_caps(chain: list[tuple[int, int, int]], size: int = 256, cap_list: bool = True) -> bytearray:
    """A type-0 header whose standard chain is ``[(offset, id, next), ...]`` (first entry = pointer target)."""
    cfg = bytearray(size)
    cfg[0:4] = bytes([0x34, 0x12, 0x78, 0x56])
    if cap_list:
        cfg[R.PCI_STATUS] = R.PCI_STATUS_CAP_LIST
    if chain:
        cfg[R.PCI_CAPABILITY_LIST] = chain[0][0]
    for off, cap_id, nxt in chain:
        cfg[off] = cap_id
        cfg[off + 1] = nxt
    return cfg


def ext_header(cap_id: int, version: int, nxt: int) -> bytes:
    return (cap_id | version << 16 | nxt << 20).to_bytes(4, "little")


def test_standard_chain_in_chain_order_with_names_and_labels() -> None:
    cfg = config_with_caps([(0x98, R.PCI_CAP_ID_MSIX, 0x84), (0x84, R.PCI_CAP_ID_VNDR, 0x40),
                            (0x40, R.PCI_CAP_ID_PM, 0)])
    chain = C.standard_capabilities(bytes(cfg))
    assert [(c.offset, c.id) for c in chain] == [(0x98, 0x11), (0x84, 0x09), (0x40, 0x01)]
    assert [c.label for c in chain] == ["[98]", "[84]", "[40]"]
    assert [c.name for c in chain] == ["MSI-X", "Vendor Specific Information", "Power Management"]
    assert str(chain[0]) == "[98] MSI-X"
    assert C.find_capability(bytes(cfg), R.PCI_CAP_ID_PM) == 0x40
    assert C.find_capability(bytes(cfg), R.PCI_CAP_ID_MSI) is None


def test_no_cap_list_bit_means_no_chain_whatever_the_pointer_says() -> None:
    cfg = config_with_caps([(0x40, R.PCI_CAP_ID_MSI, 0x40)], cap_list=False)  # would loop if followed
    assert C.standard_capabilities(bytes(cfg)) == []


def test_reserved_low_pointer_bits_are_masked_like_the_spec_says() -> None:
    cfg = config_with_caps([(0x40, R.PCI_CAP_ID_PM, 0x53), (0x50, R.PCI_CAP_ID_MSI, 0)])
    cfg[R.PCI_CAPABILITY_LIST] = 0x42
    assert [c.offset for c in C.standard_capabilities(bytes(cfg))] == [0x40, 0x50]


def test_cardbus_bridge_chain_starts_at_0x14() -> None:
    cfg = config_with_caps([(0x80, R.PCI_CAP_ID_PM, 0)])
    cfg[R.PCI_CAPABILITY_LIST] = 0
    cfg[R.PCI_HEADER_TYPE] = R.PCI_HEADER_TYPE_CARDBUS
    cfg[R.PCI_CB_CAPABILITY_LIST] = 0x80
    assert [c.offset for c in C.standard_capabilities(bytes(cfg))] == [0x80]


@pytest.mark.parametrize("chain, bad, words", [
    ([(0x40, 1, 0x40)], 0x40, "loops back"),  # self loop
    ([(0x40, 1, 0x50), (0x50, 5, 0x40)], 0x40, "loops back"),  # two-entry cycle
    ([(0x40, 1, 0x50), (0x50, 5, 0x60), (0x60, 9, 0x50)], 0x50, "loops back"),  # cycle not through the head
    ([(0x40, 1, 0x10)], 0x10, "inside the standard header"),
    ([(0x40, 1, 0x3C)], 0x3C, "inside the standard header"),
])
def test_bad_standard_chains_are_refused_with_the_bad_link_named(chain: list[tuple[int, int, int]], bad: int,
                                                                 words: str) -> None:
    cfg = config_with_caps(chain)
    with pytest.raises(C.CapabilityChainError, match=words) as info:
        C.standard_capabilities(bytes(cfg))
    assert info.value.offset == bad
    assert len(info.value.partial) >= 1  # what was walked before the lie survives


def test_first_pointer_into_the_header_is_refused() -> None:
    cfg = config_with_caps([])
    cfg[R.PCI_CAPABILITY_LIST] = 0x08
    with pytest.raises(C.CapabilityChainError, match=r"pointer at 0x34 points to 0x8, inside the standard header"):
        C.standard_capabilities(bytes(cfg))


def test_all_ones_capability_means_a_broken_chain() -> None:
    cfg = config_with_caps([(0x40, R.PCI_CAP_ID_PM, 0x50), (0x50, 0xFF, 0xFF)])
    with pytest.raises(C.CapabilityChainError, match="ID 0xff") as info:
        C.standard_capabilities(bytes(cfg))
    assert [c.offset for c in info.value.partial] == [0x40]


@pytest.mark.parametrize("length", [64, 65, 0x41, 0x80, 0xC0])
def test_truncated_dumps_are_refused_clearly(length: int) -> None:
    cfg = config_with_caps([(0x40, R.PCI_CAP_ID_PM, 0xC0), (0xC0, R.PCI_CAP_ID_MSI, 0)])
    with pytest.raises(C.CapabilityChainError, match=f"only {length} bytes were read") as info:
        C.standard_capabilities(bytes(cfg[:length]))
    if length == 64:
        assert "root" in str(info.value)  # the usual reason: sysfs gives 64 bytes to non-root users


def test_a_header_shorter_than_64_bytes_is_refused() -> None:
    with pytest.raises(C.CapabilityChainError, match="standard header"):
        C.standard_capabilities(bytes(20))


def test_the_longest_possible_chain_is_walked_and_bounded() -> None:
    """48 distinct dword-aligned capabilities fill 0x40..0xff; one more link can only loop."""
    offsets = list(range(0x40, 0x100, 4))
    chain = [(off, R.PCI_CAP_ID_VNDR, offsets[i + 1] if i + 1 < len(offsets) else 0) for i, off in enumerate(offsets)]
    cfg = config_with_caps(chain)
    assert len(C.standard_capabilities(bytes(cfg))) == C.STD_CAP_LIMIT == 48
    cfg[0xFC + 1] = 0x40  # the tail now points back to the head
    t0 = time.perf_counter()
    with pytest.raises(C.CapabilityChainError, match="loops back") as info:
        C.standard_capabilities(bytes(cfg))
    assert time.perf_counter() - t0 < 0.05
    assert len(info.value.partial) == 48


def test_extended_chain_with_versions_and_lspci_labels() -> None:
    cfg = config_with_caps([(0x40, R.PCI_CAP_ID_EXP, 0)], size=4096)
    cfg[0x100:0x104] = ext_header(R.PCI_EXT_CAP_ID_ERR, 2, 0x148)
    cfg[0x148:0x14C] = ext_header(R.PCI_EXT_CAP_ID_DSN, 1, 0x200)
    cfg[0x200:0x204] = ext_header(0x7777, 1, 0)
    chain = C.extended_capabilities(bytes(cfg))
    assert [(c.offset, c.id, c.version) for c in chain] == [(0x100, 1, 2), (0x148, 3, 1), (0x200, 0x7777, 1)]
    assert [c.label for c in chain] == ["[100 v2]", "[148 v1]", "[200 v1]"]
    assert chain[0].name == "Advanced Error Reporting"
    assert chain[2].name == "Extended Capability ID 0x7777"
    assert C.find_ext_capability(bytes(cfg), R.PCI_EXT_CAP_ID_DSN) == 0x148


@pytest.mark.parametrize("header", [0, 0xFFFFFFFF])
def test_empty_or_unreadable_extended_space_has_no_chain(header: int) -> None:
    cfg = bytearray(4096)
    cfg[0x100:0x104] = header.to_bytes(4, "little")
    assert C.extended_capabilities(bytes(cfg)) == []
    assert C.extended_capabilities(bytes(256)) == []


@pytest.mark.parametrize("links, words", [
    ([(0x100, 1, 0x100)], "loops back to 0x100"),
    ([(0x100, 1, 0x200), (0x200, 3, 0x100)], "loops back to 0x100"),
    ([(0x100, 1, 0x0FC)], "below the extended space"),
])
def test_bad_extended_chains_are_refused(links: list[tuple[int, int, int]], words: str) -> None:
    cfg = bytearray(4096)
    for off, cap_id, nxt in links:
        cfg[off:off + 4] = ext_header(cap_id, 1, nxt)
    with pytest.raises(C.CapabilityChainError, match=words):
        C.extended_capabilities(bytes(cfg))


def test_extended_pointer_past_a_truncated_dump_is_refused() -> None:
    cfg = bytearray(4096)
    cfg[0x100:0x104] = ext_header(1, 1, 0x800)
    with pytest.raises(C.CapabilityChainError, match="only 1024 bytes were read") as info:
        C.extended_capabilities(bytes(cfg[:1024]))
    assert [c.offset for c in info.value.partial] == [0x100]


def test_extended_all_ones_entry_is_a_broken_chain() -> None:
    cfg = bytearray(4096)
    cfg[0x100:0x104] = ext_header(1, 1, 0x140)
    cfg[0x140:0x144] = b"\xff" * 4
    with pytest.raises(C.CapabilityChainError, match="all ones"):
        C.extended_capabilities(bytes(cfg))


def test_walk_is_tolerant_and_keeps_both_partial_chains() -> None:
    cfg = config_with_caps([(0x40, R.PCI_CAP_ID_EXP, 0x50), (0x50, R.PCI_CAP_ID_MSI, 0x40)], size=4096)
    cfg[0x100:0x104] = ext_header(1, 1, 0x100)
    chains = C.walk(bytes(cfg))
    assert [c.offset for c in chains.standard] == [0x40, 0x50]
    assert [c.offset for c in chains.extended] == [0x100]
    assert chains.standard_error is not None and chains.extended_error is not None
    assert chains.find(R.PCI_CAP_ID_MSI) is not None and chains.find(R.PCI_EXT_CAP_ID_ERR, extended=True)
    assert len(chains.all()) == 3


def test_random_config_spaces_never_hang_or_raise_anything_else() -> None:
    rng = random.Random(1234)
    t0 = time.perf_counter()
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(1500):
        size = rng.choice([64, 100, 256, 300, 4096])
        cfg = bytearray(rng.getrandbits(8) for _ in range(min(size, 512))) + bytes(max(0, size - 512))
        cfg[R.PCI_STATUS] |= R.PCI_STATUS_CAP_LIST
        if size == 4096:  # a plausible, possibly cyclic extended chain
            for off in rng.sample(range(0x100, 0x1000, 4), 6):
                cfg[off:off + 4] = ext_header(rng.randrange(0x30), 1, rng.choice(range(0x100, 0x1000, 4)))
        for fn in (C.standard_capabilities, C.extended_capabilities):
            try:
                fn(bytes(cfg))
                outcomes["ok"] += 1
            except C.CapabilityChainError as e:
                assert str(e)
                outcomes["refused"] += 1
    assert outcomes["ok"] and outcomes["refused"]
    assert time.perf_counter() - t0 < 3.0


def test_names_for_every_kernel_capability_id() -> None:
    for cap_id in range(1, R.PCI_CAP_ID_MAX + 1):
        assert not C.cap_name(cap_id).startswith("#")
    assert C.cap_name(0x42) == "#42"
    named = [i for i in range(R.PCI_EXT_CAP_ID_MAX + 1) if not C.ext_cap_name(i).startswith("Extended Capability")]
    assert len(named) == R.PCI_EXT_CAP_ID_MAX + 1
