"""An mtty-like migratable serial device (``samples/vfio-mdev/mtty.c`` with its 2023 migration support).

The kernel's mtty sample is an mdev that emulates one or two 16550-style
UARTs whose transmitter loops back into their receiver.  It exists to
exercise the VFIO migration v2 protocol without real hardware, and pyvfio
uses it the same way: its state stream is tiny and deterministic, so a test
can check every byte of it, and a real kernel with ``mtty.ko`` behaves the
same (``vm/NOTES.md``: flags 0x7, 24 bytes of PRE_COPY data, 60 bytes in all
for one port, STOP_COPY reusing the PRE_COPY fd).

Here it is a PCI function behind vfio-pci: each port is an 8-byte I/O BAR
(BAR0, and BAR1 with two ports), INTx pin A plus a one-vector MSI capability
(mtty offers INTx and one MSI), and the config identity of mtty (vendor
0x4348, device 0x3253, class 0x070002 "16550 serial").

Migration (``mig_ops``, :class:`MttyMigration`) follows ``mtty_step_state``
arc for arc.  The stream is ``struct mtty_data``: a 24-byte header (magic,
version 1.0, number of ports, flags 0) followed by one 36-byte
``struct serial_port`` per port, in the C layout (little-endian).  The
header is all PRE_COPY offers; STOP_COPY appends the ports to the same
session.  The resuming side checks the header as soon as it is complete
(``EFAULT``, bytes still kept) and RESUMING -> STOP checks only the length
(``EINVAL``), exactly as mtty does.

Options: ``nr_ports`` (1 or 2), ``migration_flags`` (default STOP_COPY|P2P|
PRE_COPY; a subset makes the VFIO core skip the missing states, and this
model then also accepts the arcs such a device needs: RUNNING <-> STOP and
PRE_COPY -> STOP_COPY), ``dma_logging`` ("stub": mtty's log ops, which accept
everything and log nothing -- the default, as on a real kernel; "tracker":
a hardware-style tracker with mlx5's rules, which records what
``VfioDevice.dma_write`` reports).
"""

from __future__ import annotations

import struct
from typing import Any, Optional

from ...uapi import vfio as uv
from ..errno import EINVAL, KernelError
from ..file import File
from ..migration import (
    PRE_COPY, PRE_COPY_P2P, RESUMING, RUNNING, RUNNING_P2P, STOP, STOP_COPY, ERROR, DeviceDirtyTracker,
    MigrationFile, StubDmaLogOps, state_name,
)
from ..pci_device import Bar, SimPciDevice

MTTY_VENDOR = 0x4348
MTTY_DEVICE = 0x3253
MTTY_CLASS = 0x070002  # simple communication controller, serial, 16550-compatible
MTTY_REVISION = 0x10
MTTY_IO_BAR_SIZE = 8
MAX_FIFO_SIZE = 16

MTTY_MAGIC = 0x7E9D09898C3E2C4E
MTTY_MAJOR_VER = 1
MTTY_MINOR_VER = 0
#: ``struct mtty_data`` up to ``ports``: magic, major, minor, nr_ports, flags.
HEADER = struct.Struct("<QIIII")
#: ``struct serial_port``: uart_reg[8], rxtx {fifo[16], head, tail, count}, dlab, overrun,
#: (pad), divisor, fcr, max_fifo_size, intr_trigger_level, (pad) -- 36 bytes.
PORT = struct.Struct("<8s16sBBBBBxHBBBx")
#: ``sizeof(struct mtty_data)``: room for two ports whatever the device has.
MTTY_DATA_SIZE_MAX = HEADER.size + 2 * PORT.size

# 16550 registers and bits (include/uapi/linux/serial_reg.h).
UART_RX = UART_TX = 0
UART_IER = 1
UART_IIR = UART_FCR = 2
UART_LCR = 3
UART_MCR = 4
UART_LSR = 5
UART_MSR = 6
UART_SCR = 7
UART_IER_RDI, UART_IER_THRI, UART_IER_RLSI, UART_IER_MSI = 0x01, 0x02, 0x04, 0x08
UART_IIR_NO_INT, UART_IIR_MSI, UART_IIR_THRI, UART_IIR_RDI, UART_IIR_RLSI = 0x01, 0x00, 0x02, 0x04, 0x06
UART_FCR_ENABLE_FIFO, UART_FCR_CLEAR_RCVR, UART_FCR_CLEAR_XMIT = 0x01, 0x02, 0x04
UART_LCR_DLAB = 0x80
UART_MCR_DTR, UART_MCR_RTS, UART_MCR_OUT2, UART_MCR_AFE = 0x01, 0x02, 0x08, 0x20
UART_LSR_DR, UART_LSR_OE, UART_LSR_THRE, UART_LSR_TEMT = 0x01, 0x02, 0x20, 0x40
UART_MSR_DCTS, UART_MSR_DDSR, UART_MSR_CTS, UART_MSR_DSR, UART_MSR_DCD = 0x01, 0x02, 0x10, 0x20, 0x80

ALL_MIGRATION_FLAGS = uv.VFIO_MIGRATION_STOP_COPY | uv.VFIO_MIGRATION_P2P | uv.VFIO_MIGRATION_PRE_COPY


class SerialPort:
    """One emulated UART (``struct serial_port``): registers, the loopback FIFO, divisor latch."""

    def __init__(self) -> None:
        self.uart_reg = bytearray(8)
        self.fifo = bytearray(MAX_FIFO_SIZE)
        self.head = 0
        self.tail = 0
        self.count = 0
        self.dlab = 0
        self.overrun = 0
        self.divisor = 0
        self.fcr = 0
        self.max_fifo_size = MAX_FIFO_SIZE
        self.intr_trigger_level = 0

    def pack(self) -> bytes:
        return PORT.pack(bytes(self.uart_reg), bytes(self.fifo), self.head, self.tail, self.count, self.dlab,
                         self.overrun, self.divisor, self.fcr, self.max_fifo_size, self.intr_trigger_level)

    def unpack(self, raw: bytes) -> None:
        (regs, fifo, self.head, self.tail, self.count, self.dlab, self.overrun, self.divisor, self.fcr,
         self.max_fifo_size, self.intr_trigger_level) = PORT.unpack(raw)
        self.uart_reg = bytearray(regs)
        self.fifo = bytearray(fifo)

    @property
    def empty(self) -> bool:
        return self.head == self.tail


class MttyDevice(SimPciDevice):
    """The mtty sample as a PCI function: UART ports in I/O BARs, migration v2, stub DMA logging."""

    kind = "mtty"
    vfio_pci_features = False  # an mdev: no device_feature op, so LOW_POWER_* are ENOTTY as on a real kernel

    def __init__(self, nr_ports: int = 1, migration_flags: int = ALL_MIGRATION_FLAGS,
                 dma_logging: str = "stub") -> None:
        if nr_ports not in (1, 2):
            raise ValueError("mtty has 1 or 2 ports")
        if not migration_flags & uv.VFIO_MIGRATION_STOP_COPY or migration_flags & ~ALL_MIGRATION_FLAGS:
            raise ValueError("migration_flags must include VFIO_MIGRATION_STOP_COPY and only known bits")
        super().__init__(MTTY_VENDOR, MTTY_DEVICE, MTTY_CLASS, revision=MTTY_REVISION,
                         subsystem_vendor=MTTY_VENDOR, subsystem=MTTY_DEVICE, irq_pin=1)
        self.nr_ports = nr_ports
        self.ports = [SerialPort() for _ in range(nr_ports)]
        for index in range(nr_ports):
            self.set_bar(index, Bar(MTTY_IO_BAR_SIZE, kind="io", mmap=False))
        self.w16(0x04, 0x0001)  # COMMAND: I/O decode on, as mtty's config space starts
        self.w16(0x06, self.r16(0x06) | 0x0200)  # STATUS: DEVSEL medium, as mtty's
        self.add_msi_cap(1, is_64bit=False)
        self.add_pm_cap(no_soft_reset=False)  # a reset method for vfio-pci (mtty's own reset is an ioctl)
        self.config[0x60:0x6F] = b"PCI Serial/UART"  # mtty's vendor-specific string
        self.finalize()
        self.mig_ops = MttyMigration(self, migration_flags)
        if dma_logging == "stub":
            self.log_ops: Any = StubDmaLogOps()
        elif dma_logging == "tracker":
            self.log_ops = DeviceDirtyTracker()
        else:
            raise ValueError('dma_logging is "stub" or "tracker"')

    # -- the UART registers --------------------------------------------------------------------------
    def bar_read(self, bar: int, offset: int, size: int) -> bytes:
        """Byte-wise register reads of port ``bar`` (``handle_bar_read``)."""
        self._check_bar(bar, offset, size)
        return bytes(self._read_reg(self.ports[bar], offset + i) for i in range(size))

    def bar_write(self, bar: int, offset: int, data: bytes) -> None:
        """Byte-wise register writes of port ``bar`` (``handle_bar_write``)."""
        self._check_bar(bar, offset, len(data))
        for i, value in enumerate(data):
            self._write_reg(self.ports[bar], offset + i, value)

    def _interrupt(self) -> None:
        """``mtty_trigger_interrupt``: one message on MSI if enabled, else a pulse on INTx."""
        if self.msi_enabled():
            self.raise_irq("msi", 0)
        else:
            self.raise_irq("intx")
            self.lower_intx()  # mtty signals INTx as an edge; vfio-pci's auto-mask does the rest

    def _write_reg(self, p: SerialPort, reg: int, data: int) -> None:
        ier = p.uart_reg[UART_IER]
        if reg == UART_TX:
            if p.dlab:
                p.divisor |= data
            elif p.count < p.max_fifo_size:
                p.fifo[p.head] = data
                p.count += 1
                p.head = (p.head + 1) % MAX_FIFO_SIZE
                p.overrun = 0
                if ier & UART_IER_RDI and p.count == p.intr_trigger_level:
                    self._interrupt()
            else:
                p.overrun = 1
                if ier & UART_IER_RLSI:
                    self._interrupt()
        elif reg == UART_IER:
            if p.dlab:
                p.divisor |= data << 8
            else:
                p.uart_reg[UART_IER] = data
                if data & UART_IER_THRI and p.empty:
                    self._interrupt()
        elif reg == UART_FCR:
            p.fcr = data
            if data & (UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT):
                p.count = p.head = p.tail = 0
            # mtty computes a trigger level from the FCR bits and then always uses 1.
            p.intr_trigger_level = 1
            p.max_fifo_size = MAX_FIFO_SIZE if data & UART_FCR_ENABLE_FIFO else 1
        elif reg == UART_LCR:
            if data & UART_LCR_DLAB:
                p.dlab = 1
                p.divisor = 0
            else:
                p.dlab = 0
            p.uart_reg[UART_LCR] = data
        elif reg == UART_MCR:
            p.uart_reg[UART_MCR] = data
            if ier & UART_IER_MSI and data & UART_MCR_OUT2:
                self._interrupt()
            if ier & UART_IER_MSI and data & (UART_MCR_RTS | UART_MCR_DTR):
                self._interrupt()
        elif reg == UART_SCR:
            p.uart_reg[UART_SCR] = data
        # LSR and MSR are read-only.

    def _read_reg(self, p: SerialPort, reg: int) -> int:
        ier = p.uart_reg[UART_IER]
        if reg == UART_RX:
            if p.dlab:
                return p.divisor & 0xFF
            value = 0
            if not p.empty:
                value = p.fifo[p.tail]
                p.count -= 1
                p.tail = (p.tail + 1) % MAX_FIFO_SIZE
            if p.empty and ier & UART_IER_THRI:
                self._interrupt()
            return value
        if reg == UART_IER:
            return (p.divisor >> 8) & 0xFF if p.dlab else p.uart_reg[UART_IER] & 0x0F
        if reg == UART_IIR:
            iir = 0
            if ier & UART_IER_RLSI and p.overrun:
                iir |= UART_IIR_RLSI
            if ier & UART_IER_RDI and p.count >= p.intr_trigger_level:
                iir |= UART_IIR_RDI
            if ier & UART_IER_THRI and p.empty:
                iir |= UART_IIR_THRI
            if ier & UART_IER_MSI and p.uart_reg[UART_MCR] & (UART_MCR_RTS | UART_MCR_DTR):
                iir |= UART_IIR_MSI
            return (iir or UART_IIR_NO_INT) | 0xC0
        if reg in (UART_LCR, UART_MCR, UART_SCR):
            return p.uart_reg[reg]
        if reg == UART_LSR:
            lsr = 0 if p.empty else UART_LSR_DR
            if p.overrun:
                lsr |= UART_LSR_OE
            if p.empty:
                lsr |= UART_LSR_TEMT | UART_LSR_THRE
            return lsr
        # UART_MSR
        msr = UART_MSR_DSR | UART_MSR_DDSR | UART_MSR_DCD
        if not p.uart_reg[UART_MCR] & UART_MCR_AFE or p.count < p.max_fifo_size:
            msr |= UART_MSR_CTS | UART_MSR_DCTS
        return msr

    # -- state ---------------------------------------------------------------------------------------
    def save_ports(self) -> bytes:
        return b"".join(p.pack() for p in self.ports)

    def load_ports(self, raw: bytes) -> None:
        for i, p in enumerate(self.ports):
            p.unpack(raw[i * PORT.size: (i + 1) * PORT.size])

    def close_device(self, vdev: Any) -> None:
        """The device's last close (``mtty_close``; mlx5 also frees its tracker here).

        Ends any migration session and stops DMA logging, so the next user
        starts clean.  Called by the vfio-pci core's ``close_device`` when it
        offers the hook (a device-specific ``close_device`` is optional).
        """
        self.mig_ops.disable_files()
        if isinstance(self.log_ops, DeviceDirtyTracker):
            self.log_ops.log_stop(vdev)

    def reset(self) -> None:
        """Function reset: config back to power-on and the migration FSM back to RUNNING (``mtty_reset``).

        Like the sample, the UART registers survive: mtty's reset only
        touches migration (its deferred-reset dance is unnecessary here,
        the model being single-threaded).
        """
        super().reset()
        self.mig_ops.reset()


class MttyMigration:
    """mtty's migration driver: ``mig_ops`` of :class:`MttyDevice` (``mtty_step_state`` and friends).

    ``arcs`` records every arc the VFIO core asked for (what a driver "sees")
    and ``fail_arcs`` injects a failure on an arc -- ``{(cur, new): (errno,
    to_error)}`` -- to exercise the ERROR rules, which mtty itself never
    reaches.
    """

    def __init__(self, dev: MttyDevice, flags: int) -> None:
        self.dev = dev
        self.flags = flags
        self.state = RUNNING
        self.saving_migf: Optional[MigrationFile] = None
        self.resuming_migf: Optional[MigrationFile] = None
        self.arcs: list[tuple[int, int]] = []
        self.fail_arcs: dict[tuple[int, int], tuple[int, bool]] = {}

    # -- vfio_migration_ops ------------------------------------------------------------------------
    def migration_get_state(self) -> int:
        return self.state

    def migration_get_data_size(self) -> int:
        """``mtty_data_size``: header plus the ports this device has (60 bytes for one port)."""
        return HEADER.size + self.dev.nr_ports * PORT.size

    def migration_set_state(self, new: int) -> Optional[File]:
        """One arc ``self.state -> new`` (``mtty_step_state``); the data file when the arc opens a session."""
        cur = self.state
        self.arcs.append((cur, new))
        fault = self.fail_arcs.get((cur, new))
        if fault is not None:
            errno, to_error = fault
            if to_error:
                self.state = ERROR
                self.disable_files()
            raise KernelError(errno, f"mtty: arc {state_name(cur)} -> {state_name(new)} failed (injected)")
        file = self._step(cur, new)
        self.state = new
        return file

    def _step(self, cur: int, new: int) -> Optional[File]:
        arc = (cur, new)
        # mtty does no DMA and needs no explicit start/stop, so these arcs change nothing.
        if arc in ((RUNNING, RUNNING_P2P), (RUNNING_P2P, RUNNING), (RUNNING_P2P, STOP), (STOP, RUNNING_P2P),
                   (PRE_COPY, PRE_COPY_P2P), (PRE_COPY_P2P, PRE_COPY), (RUNNING, STOP), (STOP, RUNNING)):
            return None
        if arc == (RESUMING, STOP):
            self._load_state()
            self.disable_files()
            return None
        if arc in ((PRE_COPY, RUNNING), (PRE_COPY_P2P, RUNNING_P2P), (STOP_COPY, STOP)):
            self.disable_files()
            return None
        if arc in ((RUNNING, PRE_COPY), (RUNNING_P2P, PRE_COPY_P2P), (STOP, STOP_COPY), (PRE_COPY_P2P, STOP_COPY),
                   (PRE_COPY, STOP_COPY)):
            return self._save_device_data(new)
        if arc == (STOP, RESUMING):
            self.resuming_migf = MigrationFile(self, writable=True, name="anon_inode:mtty_mig",
                                               capacity=self.migration_get_data_size(), header_size=HEADER.size,
                                               validate_header=self._check_header)
            return self.resuming_migf
        raise KernelError(EINVAL, f"mtty: no arc {state_name(cur)} -> {state_name(new)} "
                                  "(vfio_mig_get_next_state never asks for it)")

    # -- saving ------------------------------------------------------------------------------------
    def _save_device_data(self, new: int) -> Optional[MigrationFile]:
        """``mtty_save_device_data``: open the session with the header; STOP_COPY appends the ports.

        Entering STOP_COPY from pre-copy continues the existing session, so
        no new file is returned (the user keeps reading the PRE_COPY fd).
        """
        migf = self.saving_migf
        if migf is not None:
            if new == STOP_COPY:
                migf.append(self.dev.save_ports())
            return None
        migf = MigrationFile(self, writable=False, name="anon_inode:mtty_mig", capacity=MTTY_DATA_SIZE_MAX)
        migf.append(HEADER.pack(MTTY_MAGIC, MTTY_MAJOR_VER, MTTY_MINOR_VER, self.dev.nr_ports, 0))
        self.saving_migf = migf
        if new == STOP_COPY:
            migf.append(self.dev.save_ports())
        return migf

    # -- resuming ----------------------------------------------------------------------------------
    def _check_header(self, header: bytes) -> Optional[str]:
        magic, major, minor, nr_ports, flags = HEADER.unpack(header)
        if magic != MTTY_MAGIC:
            return f"bad magic {magic:#x}"
        if flags:
            return f"flags {flags:#x} (must be 0)"
        if (major, minor) != (MTTY_MAJOR_VER, MTTY_MINOR_VER):
            return f"version {major}.{minor}, this device speaks {MTTY_MAJOR_VER}.{MTTY_MINOR_VER}"
        if nr_ports != self.dev.nr_ports:
            return f"{nr_ports} ports in the stream, this device has {self.dev.nr_ports}"
        return None

    def _load_state(self) -> None:
        """``mtty_load_state``: enough bytes or ``EINVAL`` (the header was judged by the writes)."""
        migf = self.resuming_migf
        need = self.migration_get_data_size()
        if migf is None or migf.filled < need:
            got = 0 if migf is None else migf.filled
            raise KernelError(EINVAL, f"mtty: incomplete device state: {got} of {need} bytes written")
        self.dev.load_ports(bytes(migf.data[HEADER.size: need]))

    # -- session end -------------------------------------------------------------------------------
    def disable_files(self) -> None:
        """``mtty_disable_files``: end both sessions; their fds now fail with ``ENODEV``."""
        for migf in (self.saving_migf, self.resuming_migf):
            if migf is not None:
                migf.disable()
        self.saving_migf = None
        self.resuming_migf = None

    def reset(self) -> None:
        self.state = RUNNING
        self.disable_files()


__all__ = ["MttyDevice", "MttyMigration", "SerialPort", "HEADER", "PORT", "MTTY_MAGIC"]
