"""QEMU's edu device (``hw/misc/edu.c``) on the simulated kernel, driven only through the device fd.

Register map, factorial, interrupt status/raise/ack, DMA in both directions
through a type1 mapping, MSI vs INTx selection and the real-kernel caveats
(bus master needed; DMA window; 28-bit DMA mask).  The same calls work on
QEMU's edu in the VM lane.
"""

from __future__ import annotations

import errno
import os
from typing import Iterator

import pytest

import pyvfio.sim
from test_vfio_pci_fixtures import (
    EDU_IOVA, EVENTFD, INTX, MSI, NONE, TRIGGER, UNMASK, PciDev, expect, kernel_fixture, new_eventfd, open_dev, take,
)

IDENT, LIVE, FACT, STATUS, IRQ_STATUS, RAISE, ACK = 0x00, 0x04, 0x08, 0x20, 0x24, 0x60, 0x64
DMA_SRC, DMA_DST, DMA_CNT, DMA_CMD = 0x80, 0x88, 0x90, 0x98
RUN, TO_RAM, IRQ_ON_DONE = 0x1, 0x2, 0x4
BUF = 0x40000
FACT_IRQ, DMA_IRQ = 0x1, 0x100


@pytest.fixture
def k() -> Iterator[pyvfio.sim.Kernel]:
    yield from kernel_fixture()


@pytest.fixture
def edu(k: pyvfio.sim.Kernel) -> Iterator[PciDev]:
    d = open_dev(k)
    yield d
    d.close()


@pytest.fixture
def efd() -> Iterator[int]:
    fd = new_eventfd()
    yield fd
    os.close(fd)


def dma(d: PciDev, src: int, dst: int, cnt: int, cmd: int) -> None:
    d.bar_w(DMA_SRC, src, 8)
    d.bar_w(DMA_DST, dst, 8)
    d.bar_w(DMA_CNT, cnt, 8)
    d.bar_w(DMA_CMD, cmd | RUN, 8)


# =====================================================================================================
# Identity and config
# =====================================================================================================
def test_edu_config_identity(edu: PciDev) -> None:
    """edu.c pci_edu_realize: 1234:11e8 rev 0x10 class 00ff; INTA; MSI cap (64-bit, 1 vector, no mask) at 0x40
    as the only capability; BAR0 a 1 MiB 32-bit non-prefetchable memory BAR."""
    assert (edu.cfg(0, 2), edu.cfg(2, 2), edu.cfg(8, 1), edu.cfg(9, 3)) == (0x1234, 0x11E8, 0x10, 0x00FF00)
    assert edu.cfg(0x3D, 1) == 1
    assert edu.cfg(0x34, 1) == 0x40 and edu.cfg(0x40, 1) == 0x05 and edu.cfg(0x41, 1) == 0
    assert edu.cfg(0x42, 2) == 0x0080
    assert edu.cfg(0x10, 4) & 0xF == 0 and edu.region(0).size == 1 << 20


def test_edu_ident_and_liveness(edu: PciDev) -> None:
    """edu: 0x00 reads 0x010000ed; 0x04 reads back the bitwise NOT of the last write."""
    assert edu.bar_r(IDENT) == 0x010000ED
    edu.bar_w(LIVE, 0x12345678)
    assert edu.bar_r(LIVE) == 0xEDCBA987


def test_edu_liveness_through_mmap(edu: PciDev) -> None:
    """edu through an mmap of BAR0: same registers, same behaviour."""
    m = edu.k.mmap(edu.fd, 4096, 0)
    m.write32(LIVE, 0)
    assert m.read32(LIVE) == 0xFFFFFFFF and m.read32(IDENT) == 0x010000ED
    m.close()


def test_edu_access_widths(edu: PciDev) -> None:
    """QEMU refuses 1- and 2-byte accesses before the edu sees them (valid.min_access_size 4): they read 0
    and writes are dropped, everywhere in BAR0 (measured on 7.3.4 in the VM lane); an unaligned 4-byte read
    is split by vfio-pci into such pieces and reads 0 too.  Below 0x80 an 8-byte access reads all ones;
    from 0x80 4 or 8 bytes; unknown registers read all ones."""
    assert edu.bar_r(IDENT, 2) == 0 and edu.bar_r(IDENT, 1) == 0 and edu.bar_r(IDENT + 2, 2) == 0
    assert edu.bar_r(IDENT + 1, 4) == 0 and edu.bar_r(DMA_SRC, 2) == 0 and edu.bar_r(0x40000, 1) == 0
    assert edu.bar_r(IDENT, 8) == (1 << 64) - 1
    edu.bar_w(LIVE, 0, 2)
    edu.bar_w(LIVE, 0, 1)
    assert edu.bar_r(LIVE) == 0  # unchanged from reset (0)
    assert edu.bar_r(0x40) == 0xFFFFFFFF and edu.bar_r(0x1000, 8) == (1 << 64) - 1
    edu.bar_w(DMA_SRC, 0x1_2345_6789, 8)
    assert edu.bar_r(DMA_SRC, 8) == 0x1_2345_6789 and edu.bar_r(DMA_SRC, 4) == 0x2345_6789


# =====================================================================================================
# Factorial and interrupts
# =====================================================================================================
@pytest.mark.parametrize("n,result", [(0, 1), (1, 1), (5, 120), (12, 479001600), (13, 6227020800 & 0xFFFFFFFF),
                                      (33, 0x80000000), (34, 0), (0xFFFFFFFF, 0)])
def test_edu_factorial(edu: PciDev, n: int, result: int) -> None:
    """edu: writing n to 0x08 computes n! in 32 bits; STATUS.COMPUTING is clear once it is readable."""
    edu.bar_w(FACT, n)
    assert edu.bar_r(STATUS) & 0x1 == 0
    assert edu.bar_r(FACT) == result


def test_edu_factorial_irq_msi(edu: PciDev, efd: int) -> None:
    """edu: with STATUS.IRQFACT (0x80) set, a finished factorial raises FACT_IRQ: an MSI when MSI is enabled."""
    edu.enable_bus_master()
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    edu.bar_w(STATUS, 0x80)
    assert edu.bar_r(STATUS) == 0x80
    edu.bar_w(FACT, 4)
    assert take(efd) == 1 and edu.bar_r(IRQ_STATUS) == FACT_IRQ
    edu.bar_w(ACK, FACT_IRQ)
    assert edu.bar_r(IRQ_STATUS) == 0
    edu.bar_w(STATUS, 0)
    edu.bar_w(FACT, 4)
    assert take(efd) == 0


def test_edu_raise_ack_intx(edu: PciDev, efd: int) -> None:
    """edu: 0x60 ORs into the interrupt status and asserts INTx (MSI off); 0x64 clears bits and drops the line
    once the status is 0, so UNMASK then does not re-signal."""
    edu.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [efd])
    edu.bar_w(RAISE, 0x10)
    edu.bar_w(RAISE, 0x01)
    assert edu.bar_r(IRQ_STATUS) == 0x11 and take(efd) == 1
    edu.bar_w(ACK, 0x10)
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)
    assert take(efd) == 1  # status 0x01 still asserts the line
    edu.bar_w(ACK, 0x01)
    edu.set_irqs(INTX, UNMASK | NONE, 0, 1)
    assert take(efd) == 0


# =====================================================================================================
# DMA
# =====================================================================================================
def test_edu_dma_roundtrip_with_msi(edu: PciDev, efd: int) -> None:
    """edu DMA: memory -> device buffer (dir 0) and device buffer -> memory (dir 1) through the IOMMU mapping;
    with IRQ_ON_DONE each completion raises DMA_IRQ as an MSI."""
    buf = edu.map_dma()
    edu.enable_bus_master()
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    pattern = bytes(range(256)) * 4
    buf[0:1024] = pattern
    dma(edu, EDU_IOVA, BUF + 0x100, 1024, IRQ_ON_DONE)
    assert edu.bar_r(DMA_CMD, 8) == IRQ_ON_DONE  # RUN clears when done
    assert take(efd) == 1 and edu.bar_r(IRQ_STATUS) == DMA_IRQ
    edu.bar_w(ACK, DMA_IRQ)
    dma(edu, BUF + 0x100, EDU_IOVA + 0x2000, 1024, TO_RAM | IRQ_ON_DONE)
    assert buf[0x2000:0x2400] == pattern
    assert take(efd) == 1


def test_edu_dma_irq_via_intx(edu: PciDev, efd: int) -> None:
    """edu: without MSI the DMA completion interrupt is INTx (auto-masked by vfio-pci)."""
    edu.map_dma()
    edu.enable_bus_master()
    edu.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [efd])
    dma(edu, EDU_IOVA, BUF, 16, IRQ_ON_DONE)
    assert take(efd) == 1


def test_edu_dma_needs_bus_master(edu: PciDev) -> None:
    """NOTES (real kernel): the user must set COMMAND.MASTER; without it no data moves."""
    buf = edu.map_dma()
    buf[0:4] = b"\xaa\xbb\xcc\xdd"
    dma(edu, EDU_IOVA, BUF, 4, 0)
    dma(edu, BUF, EDU_IOVA + 0x10, 4, TO_RAM)
    assert buf[0x10:0x14] == b"\0\0\0\0"
    edu.enable_bus_master()
    dma(edu, EDU_IOVA, BUF, 4, 0)
    dma(edu, BUF, EDU_IOVA + 0x10, 4, TO_RAM)
    assert buf[0x10:0x14] == b"\xaa\xbb\xcc\xdd"


def test_edu_dma_outside_window_moves_nothing(edu: PciDev) -> None:
    """edu_check_range: a transfer outside the 4 KiB buffer at 0x40000 is refused (QEMU 7.2 aborts the VM)."""
    buf = edu.map_dma()
    edu.enable_bus_master()
    buf[0:8] = b"12345678"
    dma(edu, EDU_IOVA, BUF + 4090, 8, 0)  # crosses the end of the window
    dma(edu, BUF + 4090, EDU_IOVA + 0x100, 8, TO_RAM)
    assert buf[0x100:0x108] == bytes(8)
    dma(edu, EDU_IOVA, BUF + 4088, 8, 0)  # the last 8 bytes of the window are fine
    dma(edu, BUF + 4088, EDU_IOVA + 0x100, 8, TO_RAM)
    assert buf[0x100:0x108] == b"12345678"


def test_edu_dma_unmapped_iova_faults_silently(edu: PciDev, efd: int) -> None:
    """edu ignores the DMA result: an IOMMU fault (unmapped IOVA) moves nothing but still completes with an IRQ."""
    buf = edu.map_dma()
    edu.enable_bus_master()
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [efd])
    dma(edu, BUF, 0x0800_0000, 64, TO_RAM | IRQ_ON_DONE)
    assert take(efd) == 1 and buf[0:64] == bytes(64)


def test_edu_dma_mask_clamps_to_28_bits(edu: PciDev) -> None:
    """edu_clamp_addr: device-side addresses are masked to 28 bits, so 0x1_0010_0000 reaches IOVA 0x10_0000."""
    buf = edu.map_dma()
    edu.enable_bus_master()
    buf[0:4] = b"wxyz"
    dma(edu, 0x1_0000_0000 + EDU_IOVA, BUF, 4, 0)
    dma(edu, BUF, 0x1_0000_0000 + EDU_IOVA + 8, 4, TO_RAM)
    assert buf[8:12] == b"wxyz"


def test_edu_dma_cmd_without_run_ignored(edu: PciDev) -> None:
    """edu: a DMA command without the RUN bit is ignored (the register keeps its old value)."""
    edu.bar_w(DMA_CMD, TO_RAM | IRQ_ON_DONE, 8)
    assert edu.bar_r(DMA_CMD, 8) == 0


def test_edu_dma_after_unmap_faults(edu: PciDev) -> None:
    """Once the mapping is gone the device's DMA faults in the IOMMU: memory is untouched."""
    buf = edu.map_dma()
    edu.enable_bus_master()
    from pyvfio.uapi import vfio as uv
    edu.k.ioctl(edu.container, uv.VFIO_IOMMU_UNMAP_DMA, uv.vfio_iommu_type1_dma_unmap(
        argsz=24, iova=EDU_IOVA, size=len(buf)))
    buf[0:4] = b"abcd"
    dma(edu, BUF, EDU_IOVA, 4, TO_RAM)
    assert buf[0:4] == b"abcd"


def test_edu_msi_disable_returns_to_intx(edu: PciDev) -> None:
    """edu_raise_irq: the choice between MSI and INTx follows the MSI enable bit the kernel programs."""
    e1, e2 = new_eventfd(), new_eventfd()
    edu.enable_bus_master()
    edu.set_irqs(MSI, TRIGGER | EVENTFD, 0, 1, [e1])
    edu.bar_w(RAISE, 1)
    edu.bar_w(ACK, 1)
    edu.set_irqs(MSI, TRIGGER | NONE, 0, 0)
    edu.set_irqs(INTX, TRIGGER | EVENTFD, 0, 1, [e2])
    edu.bar_w(RAISE, 1)
    assert (take(e1), take(e2)) == (1, 1)
    edu.set_irqs(INTX, TRIGGER | NONE, 0, 0)
    for _fd in (e1, e2):
        os.close(_fd)


def test_edu_write_past_bar_einval(edu: PciDev) -> None:
    """vfio_pci_bar_rw: an access starting past the 1 MiB BAR -> EINVAL."""
    expect(errno.EINVAL, edu.bar_w, 1 << 20, 0)
