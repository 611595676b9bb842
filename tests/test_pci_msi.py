"""MSI and MSI-X as the guest sees them: fully emulated capabilities, the MSI-X table/PBA overlay, mmap windows.

Rules: QEMU ``hw/pci/msi.c`` (``msi_init`` write masks, ``msi_write_config`` clamping and pending
delivery), ``hw/pci/msix.c`` (function mask, vector mask, PBA), ``hw/vfio/pci.c`` (enable transitions
become VFIO_DEVICE_SET_IRQS -- here events; the table page is cut out of the BAR mapping).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from pyvfio.pci import ConfigEvent, MsiMessage, VfioConfigRegion, VirtualConfig, mmap_windows, open_group_device
from pyvfio.pci.msi import msi_cap_size
from pyvfio.pci.msix import pba_size
from pyvfio.sim import Kernel
from pyvfio.uapi import pci_regs as R


class Opened:
    def __init__(self, kind: str, **options: Any) -> None:
        self.kernel = Kernel()
        self.sim = self.kernel.add_device(kind, **options)
        self._cm = open_group_device(self.kernel, self.sim.group_id, self.sim.address)
        self.region = VfioConfigRegion(self.kernel, self._cm.__enter__())
        self.hw = self.kernel.devices[self.sim.address].ops.pci

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


def opened(kind: str, **options: Any) -> Iterator[tuple[VirtualConfig, list[ConfigEvent], Opened]]:
    o = Opened(kind, **options)
    vc = VirtualConfig(o.region)
    got: list[ConfigEvent] = []
    vc.add_listener(got.append)
    yield vc, got, o
    o.close()


@pytest.fixture
def msi64() -> Iterator[tuple[VirtualConfig, list[ConfigEvent], Opened]]:
    yield from opened("edu")


@pytest.fixture
def msix() -> Iterator[tuple[VirtualConfig, list[ConfigEvent], Opened]]:
    yield from opened("pci", bars=[{"index": 0, "size": 0x4000}], msix=16, msix_bar=0, msix_table_offset=0x2000)


def kinds(got: list[ConfigEvent]) -> list[str]:
    return [e.kind for e in got]


# -- MSI ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, size", [(0, 10), (R.PCI_MSI_FLAGS_64BIT, 14), (R.PCI_MSI_FLAGS_MASKBIT, 20),
                                         (R.PCI_MSI_FLAGS_64BIT | R.PCI_MSI_FLAGS_MASKBIT, 24)])
def test_msi_capability_sizes(flags: int, size: int) -> None:
    assert msi_cap_size(flags) == size


def test_msi_cap_is_fully_emulated_and_enable_is_an_event(msi64: Any) -> None:
    vc, got, o = msi64
    msi = vc.msi
    assert msi is not None and msi.is_64 and not msi.maskable and msi.size == 14
    assert all(vc.emulated[b] == 0xFF for b in range(msi.offset, msi.offset + msi.size))
    base = msi.offset
    vc.write_int(base + R.PCI_MSI_ADDRESS_LO, 4, 0xFEE01003)  # the low two bits are reserved
    vc.write_int(base + R.PCI_MSI_ADDRESS_HI, 4, 0x1)
    vc.write_int(base + R.PCI_MSI_DATA_64, 2, 0x4041)
    assert vc.read_int(base + R.PCI_MSI_ADDRESS_LO, 4) == 0xFEE01000
    assert msi.address == 0x1_FEE01000 and msi.data == 0x4041
    assert got == []
    vc.write_int(base + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE)
    assert kinds(got) == ["msi-enable"] and got[0].new == 1
    # the guest reads ENABLE set although the kernel's own view never keeps it without SET_IRQS
    assert vc.read_int(base + R.PCI_MSI_FLAGS, 2) & R.PCI_MSI_FLAGS_ENABLE
    assert not int.from_bytes(o.region.config_read(base + R.PCI_MSI_FLAGS, 2), "little") & R.PCI_MSI_FLAGS_ENABLE
    assert msi.notify(0) == MsiMessage(0x1_FEE01000, 0x4041)
    vc.write_int(base + R.PCI_MSI_DATA_64, 2, 0x4042)
    assert kinds(got)[-1] == "msi-update"
    vc.write_int(base + R.PCI_MSI_FLAGS, 2, 0)
    assert kinds(got)[-1] == "msi-disable"
    with pytest.raises(ValueError, match="not enabled"):
        msi.notify(0)


def test_msi_multiple_message_clamped_and_vector_in_data() -> None:
    for vc, got, _o in opened("pci", msi=4, msi_64bit=False, msi_maskable=True):
        msi = vc.msi
        assert msi is not None
        # NB the simulated kernel reports Multiple Message Capable as 0 until SET_IRQS (see the report):
        # QEMU sizes the guest's capability from that read, so here the guest is offered what the kernel says.
        flags_seen = int.from_bytes(vc.device.config_read(msi.offset + R.PCI_MSI_FLAGS, 2), "little")
        assert msi.max_vectors == 1 << ((flags_seen & R.PCI_MSI_FLAGS_QMASK) >> 1)
        assert not msi.is_64 and msi.maskable and msi.size == 20
        vc.write_int(msi.offset + R.PCI_MSI_DATA_32, 2, 0x40)
        vc.write_int(msi.offset + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE | (5 << 4))  # asks for 32
        assert msi.vectors == msi.max_vectors  # clamped to what is offered
        assert got[-1].kind == "msi-enable" and got[-1].new == msi.vectors


def test_msi_with_four_vectors_offered() -> None:
    """A 4-vector maskable function, its capability read the way Linux 7.3 presents it.

    The real kernel's ``vfio_msi_config_read`` updates the 16 bits at the capability's start instead of
    its flags, so Multiple Message Capable reads as the hardware's value; the wrapper below gives that
    view over the simulated kernel (which reports the last allocation instead).
    """
    o = Opened("pci", msi=4, msi_64bit=True, msi_maskable=True)
    hw_flags = o.hw.r16(o.hw.msi_cap + R.PCI_MSI_FLAGS)

    class AsLinux:
        def config_read(self, off: int, size: int) -> bytes:
            data = bytearray(o.region.config_read(off, size))
            flags = o.hw.msi_cap + R.PCI_MSI_FLAGS
            if off <= flags < off + size:
                data[flags - off] = (data[flags - off] & ~R.PCI_MSI_FLAGS_QMASK) | (hw_flags & R.PCI_MSI_FLAGS_QMASK)
            return bytes(data)

        def config_write(self, off: int, data: bytes) -> None:
            o.region.config_write(off, data)

    vc = VirtualConfig(AsLinux(), size=256)
    got: list[ConfigEvent] = []
    vc.add_listener(got.append)
    msi = vc.msi
    assert msi is not None
    assert msi.max_vectors == 4 and msi.size == 24
    assert vc.wmask[msi.mask_off] == 0x0F and vc.wmask[msi.pending_off] == 0  # pending is read-only
    vc.write_int(msi.data_off, 2, 0x4023)
    vc.write_int(msi.offset + R.PCI_MSI_FLAGS, 2, R.PCI_MSI_FLAGS_ENABLE | (5 << 4))
    assert msi.vectors == 4  # QSIZE 5 (32) clamped to QMASK 2 (4)
    assert [msi.message(v).data for v in range(4)] == [0x4020, 0x4021, 0x4022, 0x4023]
    with pytest.raises(ValueError, match="vector 4 is not enabled"):
        msi.message(4)
    # per-vector mask: a masked vector's message is held as pending and delivered on unmask
    vc.write_int(msi.mask_off, 4, 0b0100)
    assert [e for e in got if e.kind == "msi-mask"][-1].index == 2
    assert msi.notify(2) is None and msi.pending == 0b0100
    assert vc.read_int(msi.pending_off, 4) == 0b0100
    vc.write_int(msi.pending_off, 4, 0)  # the guest cannot clear pending by writing
    assert msi.pending == 0b0100
    got.clear()
    vc.write_int(msi.mask_off, 4, 0)
    delivered = [e for e in got if e.kind == "deliver"]
    assert len(delivered) == 1 and delivered[0].index == 2 and delivered[0].message == msi.message(2)
    assert msi.pending == 0
    vc.write_int(msi.mask_off, 4, 0xFFFFFFFF)
    assert msi.mask == 0x0F  # mask bits exist only for the vectors the function has
    o.close()


# -- MSI-X ------------------------------------------------------------------------------------------------

def test_msix_cap_emulated_with_table_layout(msix: Any) -> None:
    vc, _got, o = msix
    x = vc.msix
    assert x is not None and x.entries == 16
    assert x.layout.table_range() == (0x2000, 0x2100) and x.layout.pba_bar == 0
    assert all(vc.emulated[b] == 0xFF for b in range(x.offset, x.offset + 12))
    assert vc.read_int(x.offset + R.PCI_MSIX_FLAGS, 2) == 15
    assert vc.read_int(x.offset + R.PCI_MSIX_TABLE, 4) == 0x2000
    assert all(x.vector_masked(v) for v in range(16))  # every vector starts masked
    assert vc.wmask[x.offset + 3] == 0xC0 and vc.wmask[x.offset + 2] == 0  # only ENABLE and MASKALL


def test_msix_enable_mask_unmask_and_pending_delivery(msix: Any) -> None:
    vc, got, _o = msix
    x = vc.msix
    assert x is not None
    entry = 3 * 16
    assert vc.bar_write(0, 0x2000 + entry, (0xFEE00000).to_bytes(4, "little") + bytes(4) + (0x55).to_bytes(4, "little"))
    vc.write_int(x.offset + R.PCI_MSIX_FLAGS, 2, R.PCI_MSIX_FLAGS_ENABLE | R.PCI_MSIX_FLAGS_MASKALL)
    assert kinds(got) == ["msix-enable"] and got[0].new == 16
    assert x.function_masked
    assert x.notify(3) is None and x.is_pending(3) and x.pba_trapped  # masked: held in the PBA
    assert vc.bar_read(0, 0x2100, 8) == (1 << 3).to_bytes(8, "little")
    got.clear()
    vc.write_int(x.offset + R.PCI_MSIX_FLAGS, 2, R.PCI_MSIX_FLAGS_ENABLE)  # function mask off; vector 3 still masked
    assert got == []
    assert vc.bar_write(0, 0x2000 + entry + 12, (0).to_bytes(4, "little"))  # unmask vector 3
    assert [(e.kind, e.index) for e in got] == [("msix-mask", 3), ("deliver", 3)]
    assert got[1].message == MsiMessage(0xFEE00000, 0x55)
    assert not x.is_pending(3) and not x.pba_trapped
    assert x.notify(3) == MsiMessage(0xFEE00000, 0x55)
    got.clear()
    vc.write_int(x.offset + R.PCI_MSIX_FLAGS, 2, R.PCI_MSIX_FLAGS_ENABLE | R.PCI_MSIX_FLAGS_MASKALL)
    assert [(e.kind, e.index, e.new) for e in got] == [("msix-mask", 3, 1)]
    vc.write_int(x.offset + R.PCI_MSIX_FLAGS, 2, 0)
    assert kinds(got)[-1] == "msix-disable"


def test_msix_table_reads_back_and_pba_is_read_only(msix: Any) -> None:
    vc, _got, _o = msix
    assert vc.bar_write(0, 0x2010, b"\x11\x22\x33\x44")
    assert vc.bar_read(0, 0x2010, 4) == b"\x11\x22\x33\x44"
    assert vc.bar_write(0, 0x2100, b"\xff" * 8)  # consumed, ignored
    assert vc.bar_read(0, 0x2100, 8) == bytes(8)
    assert vc.bar_read(0, 0x1000, 4) is None and not vc.bar_write(0, 0x1000, b"\0" * 4)  # not trapped: device
    with pytest.raises(ValueError, match="straddles"):
        vc.bar_read(0, 0x1FFC, 8)
    x = vc.msix
    assert x is not None
    with pytest.raises(ValueError, match="vector 16 does not exist"):
        x.message(16)


def test_msix_reset_masks_everything(msix: Any) -> None:
    vc, _got, _o = msix
    x = vc.msix
    assert x is not None
    vc.bar_write(0, 0x200C, b"\0\0\0\0")
    vc.write_int(x.offset + R.PCI_MSIX_FLAGS, 2, R.PCI_MSIX_FLAGS_ENABLE)
    vc.reset()
    assert not x.enabled and all(x.vector_masked(v) for v in range(16))


def test_msix_outside_its_bar_is_refused() -> None:
    o = Opened("pci", bars=[{"index": 0, "size": 0x1000}, {"index": 1, "size": 0x1000}], msix=8, msix_bar=1,
               msix_table_offset=0, msix_pba_offset=0x800)
    try:
        good = VirtualConfig(o.region)
        assert good.msix is not None and good.msix.layout.pba_range() == (0x800, 0x808)

        class Lying:  # the capability claims the PBA is beyond the end of BAR1
            def config_read(self, off: int, size: int) -> bytes:
                data = bytearray(o.region.config_read(off, size))
                pba = good.msix.offset + R.PCI_MSIX_PBA  # type: ignore[union-attr]
                if off <= pba < off + size:
                    data[pba - off: pba - off + 4] = (0x2000 | 1).to_bytes(4, "little")
                return bytes(data)

            def config_write(self, off: int, data: bytes) -> None:
                o.region.config_write(off, data)

        with pytest.raises(ValueError, match="PBA .* lies outside BAR1"):
            VirtualConfig(Lying(), size=256)
    finally:
        o.close()


# -- mmap windows -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("bar, trapped, page, windows", [
    (0x4000, [(0x2000, 0x2100)], 4096, [(0, 0x2000), (0x3000, 0x1000)]),  # table mid-BAR: split in two
    (0x4000, [(0, 0x100)], 4096, [(0x1000, 0x3000)]),  # at the start
    (0x4000, [(0x3F00, 0x4000)], 4096, [(0, 0x3000)]),  # at the end
    (0x1000, [(0, 0x100)], 4096, []),  # the whole (page-sized) BAR is the trap
    (0x10000, [(0x1800, 0x2200)], 4096, [(0, 0x1000), (0x3000, 0xD000)]),  # spans a page boundary
    (0x10000, [(0x2000, 0x2100), (0x2800, 0x2808)], 4096, [(0, 0x2000), (0x3000, 0xD000)]),  # table+PBA, one page
    (0x20000, [(0x8000, 0x8100)], 65536, [(0x10000, 0x10000)]),  # 64 KiB host pages
    (0x4000, [], 4096, [(0, 0x4000)]),
])
def test_mmap_windows_are_page_aligned_and_exclude_traps(bar: int, trapped: list[tuple[int, int]], page: int,
                                                        windows: list[tuple[int, int]]) -> None:
    got = mmap_windows(bar, trapped, page)
    assert got == windows
    for off, size in got:
        assert off % page == 0 and size % page == 0 and off + size <= bar
        for start, end in trapped:
            assert off + size <= start or off >= end


def test_msix_windows_with_and_without_the_pba(msix: Any) -> None:
    vc, _got, _o = msix
    x = vc.msix
    assert x is not None
    assert x.mmap_windows(0, 0x4000, 4096) == [(0, 0x2000), (0x3000, 0x1000)]
    assert x.mmap_windows(0, 0x4000, 4096, include_pba=True) == [(0, 0x2000), (0x3000, 0x1000)]
    assert x.trapped_ranges(0, include_pba=True) == [(0x2000, 0x2100), (0x2100, 0x2108)]
    assert pba_size(16) == 8 and pba_size(65) == 16
