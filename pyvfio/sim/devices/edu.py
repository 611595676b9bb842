"""QEMU's ``edu`` teaching device (``hw/misc/edu.c``), the device pyvfio's tests drive.

It is the smallest device that does everything a VFIO user must handle: an
MMIO BAR with registers, a liveness check, a computation that finishes with
an interrupt, DMA to and from memory through the IOMMU, and both INTx and
MSI.  The same register layout exists in a real QEMU guest (the VM lane), so
a test written against this model runs unchanged there.

BAR0 (1 MiB, 32-bit memory): 32-bit registers below 0x80 (4-byte accesses
only), 64-bit DMA registers from 0x80 (4- or 8-byte accesses).  An access
narrower than 4 bytes never reaches the device: QEMU declares the region's
smallest valid access as 4 bytes, so its memory core refuses 1- and 2-byte
accesses itself -- they read as 0 and writes are dropped (measured in the VM
lane through both ``pread`` and an ``mmap`` of the BAR; vfio-pci splits an
unaligned access into such narrow pieces, so an unaligned 4-byte read gives
0 too).  An 8-byte access below 0x80 does reach the device, which answers
all ones and ignores the write, as QEMU's edu does.

======  =====================================================================
0x00    identification, reads 0x010000ed (major 1, minor 0, magic 0xed)
0x04    liveness: reads back the bitwise NOT of what was written
0x08    factorial: write n, read n! (32-bit) once STATUS.COMPUTING clears
0x20    status: 0x01 computing, 0x80 raise FACT_IRQ when a factorial is done
0x24    interrupt status (FACT_IRQ 0x1, DMA_IRQ 0x100, or any written bits)
0x60    raise interrupt: ORs the value into the interrupt status
0x64    acknowledge interrupt: clears those bits (the INTx line drops at 0)
0x80    DMA source address, 0x88 destination, 0x90 byte count
0x98    DMA command: 0x1 start, 0x2 direction (0: memory -> device buffer,
        1: device buffer -> memory), 0x4 raise DMA_IRQ when done
======  =====================================================================

The device buffer sits at device address 0x40000 (4 KiB); device-side DMA
addresses are clamped to ``dma_mask`` (28 bits by default).  Interrupts are
MSI when the MSI capability is enabled, INTx otherwise.

Model choices, each to stay deterministic: the factorial and a DMA complete
synchronously on the register write (QEMU uses a thread and a 100 ms timer;
software that polls STATUS/CMD sees them done at once).  A DMA whose buffer
range falls outside the 4 KiB window moves no data and records
``dma_error`` (QEMU 7.2 aborts the VM, newer QEMU logs and copies anyway).
The window check is newer QEMU's (a transfer may end exactly at the end of
the buffer); QEMU 7.2 already aborts on a 4096-byte transfer, so portable
tests stay below 4096 bytes and IOVA 2^28, as the VM notes say.  QEMU's edu
has no reset handler (its registers survive a bus reset); the model clears
them on a function reset so resets are observable in tests.
DMA needs COMMAND.MASTER, as the bus-master address space does in QEMU; an
MSI also needs it (it is a memory write), INTx does not.

pyvfio extensions, off by default so the default matches ``-device edu``:
``express`` (a PCIe function with FLR and AER), ``msix_vectors`` (an MSI-X
capability with its table in BAR1, and register 0x68 raising MSI-X vector
n), ``msi_vectors``/``msi_maskable``, ``pm`` (a PM capability) and
``rom_size``.
"""

from __future__ import annotations

from typing import Optional

from ..errno import KernelError
from ...uapi.pci_regs import (
    PCI_EXP_TYPE_ENDPOINT,
)
from ..pci_device import (
    Bar,
    SimPciDevice,
)

EDU_VENDOR_ID = 0x1234
EDU_DEVICE_ID = 0x11E8
EDU_REVISION = 0x10
EDU_CLASS = 0x00FF00  # PCI_CLASS_OTHERS, prog-if 0
EDU_MIN_ACCESS = 4  # MemoryRegionOps.valid.min_access_size of QEMU's edu BAR0

EDU_REG_IDENT = 0x00
EDU_REG_LIVENESS = 0x04
EDU_REG_FACTORIAL = 0x08
EDU_REG_STATUS = 0x20
EDU_REG_IRQ_STATUS = 0x24
EDU_REG_IRQ_RAISE = 0x60
EDU_REG_IRQ_ACK = 0x64
EDU_REG_MSIX_RAISE = 0x68  # pyvfio extension (only with msix_vectors)
EDU_REG_DMA_SRC = 0x80
EDU_REG_DMA_DST = 0x88
EDU_REG_DMA_COUNT = 0x90
EDU_REG_DMA_CMD = 0x98

EDU_IDENT = 0x010000ED
EDU_STATUS_COMPUTING = 0x01
EDU_STATUS_IRQFACT = 0x80
EDU_FACT_IRQ = 0x00000001
EDU_DMA_IRQ = 0x00000100
EDU_DMA_RUN = 0x1
EDU_DMA_DIR_TO_PCI = 0x2  # set: device buffer -> memory; clear: memory -> device buffer
EDU_DMA_IRQ_ON_DONE = 0x4
EDU_DMA_START = 0x40000
EDU_DMA_SIZE = 4096
EDU_BAR_SIZE = 1 << 20
EDU_DEFAULT_DMA_MASK = (1 << 28) - 1


class EduDevice(SimPciDevice):
    """The edu function: vendor 1234, device 11e8, class 00ff, BAR0 1 MiB, MSI (1 vector, 64-bit), INTA."""

    kind = "edu"
    qemu_config_wmask = True  # bytes 0x40-0xff outside the MSI capability keep what is written, as in QEMU

    def __init__(self, *, express: bool = False, msi_vectors: int = 1, msi_maskable: bool = False,
                 msix_vectors: int = 0, pm: bool = False, rom_size: int = 0,
                 dma_mask: int = EDU_DEFAULT_DMA_MASK) -> None:
        super().__init__(EDU_VENDOR_ID, EDU_DEVICE_ID, EDU_CLASS, revision=EDU_REVISION,
                         subsystem_vendor=0x1AF4, subsystem=0x1100, express=express, irq_pin=1)
        self.set_bar(0, Bar(EDU_BAR_SIZE, "mem32"))
        if msix_vectors:
            self.set_bar(1, Bar(0x1000, "mem32"))
        if rom_size:
            self.set_rom(rom_size, b"\x55\xaa" + b"pyvfio edu option rom")
        if pm:
            self.add_pm_cap()
        if express:
            self.add_pcie_cap(port_type=PCI_EXP_TYPE_ENDPOINT, flr=True)
        if msi_vectors:
            self.add_msi_cap(msi_vectors, is_64bit=True, maskable=msi_maskable)
        if msix_vectors:
            self.add_msix_cap(msix_vectors, bar=1, table_offset=0, pba_offset=0x800)
        if express:
            self.add_aer_ecap()
        self.finalize()
        self.dma_mask = dma_mask
        self.dma_buf = bytearray(EDU_DMA_SIZE)
        self.dma_error: Optional[str] = None
        self._clear_registers()

    def _clear_registers(self) -> None:
        self.addr4 = 0
        self.fact = 0
        self.status = 0
        self.irq_status = 0
        self.dma_src = 0
        self.dma_dst = 0
        self.dma_cnt = 0
        self.dma_cmd = 0

    # -- interrupts ------------------------------------------------------------------------------
    def _edu_raise_irq(self, bits: int) -> None:
        """Interrupt status gains ``bits``; a non-zero status sends MSI if enabled, else asserts INTx."""
        self.irq_status |= bits
        if not self.irq_status:
            return
        if self.msi_enabled():
            if self.bus_master_enabled():  # an MSI is a memory write: no bus mastering, no message
                self.raise_irq("msi", 0)
        else:
            self.raise_irq("intx", 0)

    def _edu_lower_irq(self, bits: int) -> None:
        self.irq_status &= ~bits & 0xFFFFFFFF
        if not self.irq_status and not self.msi_enabled():
            self.lower_intx()

    # -- BAR0 ------------------------------------------------------------------------------------
    def bar_read(self, bar: int, offset: int, size: int) -> bytes:
        if bar != 0:
            return super().bar_read(bar, offset, size)
        self._check_bar(bar, offset, size)
        return self._mmio_read(offset, size).to_bytes(size, "little")

    def bar_write(self, bar: int, offset: int, data: bytes) -> None:
        if bar != 0:
            super().bar_write(bar, offset, data)
            return
        self._check_bar(bar, offset, len(data))
        self._mmio_write(offset, int.from_bytes(data, "little"), len(data))

    @staticmethod
    def _valid(offset: int, size: int) -> bool:
        return size == 4 if offset < 0x80 else size in (4, 8)

    def _mmio_read(self, offset: int, size: int) -> int:
        if size < EDU_MIN_ACCESS:
            return 0  # refused before the device: QEMU's unassigned-access read value
        ones = (1 << (8 * size)) - 1
        if not self._valid(offset, size):
            return ones
        regs = {
            EDU_REG_IDENT: EDU_IDENT,
            EDU_REG_LIVENESS: self.addr4,
            EDU_REG_FACTORIAL: self.fact,
            EDU_REG_STATUS: self.status,
            EDU_REG_IRQ_STATUS: self.irq_status,
            EDU_REG_DMA_SRC: self.dma_src,
            EDU_REG_DMA_DST: self.dma_dst,
            EDU_REG_DMA_COUNT: self.dma_cnt,
            EDU_REG_DMA_CMD: self.dma_cmd,
        }
        return regs.get(offset, ones) & ones

    def _mmio_write(self, offset: int, val: int, size: int) -> None:
        if not self._valid(offset, size):
            return
        if offset == EDU_REG_LIVENESS:
            self.addr4 = ~val & 0xFFFFFFFF
        elif offset == EDU_REG_FACTORIAL:
            if not self.status & EDU_STATUS_COMPUTING:
                self._factorial(val & 0xFFFFFFFF)
        elif offset == EDU_REG_STATUS:
            if val & EDU_STATUS_IRQFACT:
                self.status |= EDU_STATUS_IRQFACT
            else:
                self.status &= ~EDU_STATUS_IRQFACT
        elif offset == EDU_REG_IRQ_RAISE:
            self._edu_raise_irq(val & 0xFFFFFFFF)
        elif offset == EDU_REG_IRQ_ACK:
            self._edu_lower_irq(val & 0xFFFFFFFF)
        elif offset == EDU_REG_MSIX_RAISE and self.msix_vectors:
            if self.bus_master_enabled():
                self.raise_irq("msix", val & 0xFFFFFFFF)
        elif offset in (EDU_REG_DMA_SRC, EDU_REG_DMA_DST, EDU_REG_DMA_COUNT):
            if self.dma_cmd & EDU_DMA_RUN:
                return  # registers are frozen while a transfer runs
            if offset == EDU_REG_DMA_SRC:
                self.dma_src = val
            elif offset == EDU_REG_DMA_DST:
                self.dma_dst = val
            else:
                self.dma_cnt = val
        elif offset == EDU_REG_DMA_CMD:
            if not val & EDU_DMA_RUN or self.dma_cmd & EDU_DMA_RUN:
                return
            self.dma_cmd = val
            self._dma_run()

    def _factorial(self, n: int) -> None:
        self.fact = n
        self.status |= EDU_STATUS_COMPUTING
        # The device multiplies in 32 bits.  From 34 on, n! holds at least 32 factors of two,
        # so the 32-bit product is 0: no need to loop up to four billion times as QEMU's thread would.
        result = 0 if n >= 34 else 1
        while 0 < n < 34:
            result = (result * n) & 0xFFFFFFFF
            n -= 1
        self.fact = result
        self.status &= ~EDU_STATUS_COMPUTING
        if self.status & EDU_STATUS_IRQFACT:
            self._edu_raise_irq(EDU_FACT_IRQ)

    # -- DMA -------------------------------------------------------------------------------------
    def _dma_run(self) -> None:
        """One transfer between memory (through the IOMMU) and the device buffer, then the optional IRQ."""
        to_pci = bool(self.dma_cmd & EDU_DMA_DIR_TO_PCI)
        buf_addr = self.dma_src if to_pci else self.dma_dst
        mem_addr = (self.dma_dst if to_pci else self.dma_src) & self.dma_mask
        cnt = self.dma_cnt
        self.dma_error = None
        if not (EDU_DMA_START <= buf_addr and buf_addr + cnt <= EDU_DMA_START + EDU_DMA_SIZE):
            self.dma_error = (f"buffer range {buf_addr:#x}+{cnt:#x} outside "
                              f"{EDU_DMA_START:#x}+{EDU_DMA_SIZE:#x}")
        elif not self.bus_master_enabled():
            self.dma_error = "bus mastering is disabled (COMMAND.MASTER clear)"
        elif cnt:
            off = buf_addr - EDU_DMA_START
            try:
                if to_pci:
                    self.dma_write(mem_addr, bytes(self.dma_buf[off: off + cnt]))
                else:
                    self.dma_buf[off: off + cnt] = self.dma_read(mem_addr, cnt)
            except KernelError as e:  # an IOMMU fault: edu ignores the result, the host logs it
                self.dma_error = f"IOMMU fault at iova {mem_addr:#x}: {e.reason}"
        self.dma_cmd &= ~EDU_DMA_RUN
        if self.dma_cmd & EDU_DMA_IRQ_ON_DONE:
            self._edu_raise_irq(EDU_DMA_IRQ)

    # -- reset -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """A function reset clears the config space and drops the line; the model clears edu's registers too."""
        super().reset()
        self._clear_registers()
        self.dma_buf[:] = bytes(EDU_DMA_SIZE)
        self.dma_error = None
