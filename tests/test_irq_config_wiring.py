"""ConfigInterruptWiring on the simulated kernel: guest config writes (and restores) program the host device.

Each test drives a generic simulated function that has INTx, maskable MSI and MSI-X through its
guest-visible config (:class:`VirtualConfig` over the raw config region), lets the wiring turn that into
``VFIO_DEVICE_SET_IRQS``, then makes the simulated *hardware* raise a vector
(``ops.pci.raise_irq``) and checks it comes out of the wired eventfd's handler.  The simulated
vfio-pci core (``ops``) is the witness for what the host has enabled (``irq_type``, ``irq_ctx``).
"""

from __future__ import annotations

import errno
import os
from typing import Any, Iterator, Optional

import pytest

from pyvfio.errors import VfioError
from pyvfio.irq.config_wiring import ConfigInterruptWiring
from pyvfio.irq.eventfd import FdHandlers
from pyvfio.irq.kvm import MsiMessage
from pyvfio.irq.vfio_irqs import INTX, MSI, MSIX, IntxController, MsiController, MsixController, VfioIrqs
from pyvfio.pci import VfioConfigRegion, VirtualConfig, open_group_device
from pyvfio.pci.state import restore_state, save_state
from pyvfio.sim import Kernel
from pyvfio.uapi import pci_regs as R
from pyvfio.uapi import vfio as uv

NMSI = 4
NMSIX = 8
OPTIONS: dict[str, Any] = dict(bars=[{"index": 0, "size": 0x4000}], msi=NMSI, msi_maskable=True, msix=NMSIX,
                               msix_bar=0, msix_table_offset=0x2000)
MSI_ADDR = 0xFEE0_1000
IRQ_NONE_TYPES = (INTX, MSI, MSIX)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Guest:
    """One simulated function as a VMM sees it: config emulation, controllers, and the wiring."""

    def __init__(self, kernel: Kernel, *, dynamic: bool = True) -> None:
        self.kernel = kernel
        self.sim = kernel.add_device("pci", **OPTIONS)
        self.core = kernel.devices[self.sim.address].ops  # simulated vfio-pci: what the host enabled
        self.core.has_dyn_msix = dynamic
        self.hw = self.core.pci  # the function itself: raise_irq() is the device interrupting
        self._cm = open_group_device(kernel, self.sim.group_id, self.sim.address)
        self.fd = self._cm.__enter__()
        self.region = VfioConfigRegion(kernel, self.fd)
        self.vc = VirtualConfig(self.region)
        self.handlers = FdHandlers()
        self.delivered: list[tuple[str, int, MsiMessage]] = []
        self.wiring: Optional[ConfigInterruptWiring] = None

    def wire(self, *, sync: bool = False) -> ConfigInterruptWiring:
        irqs = VfioIrqs(self.region)
        self.intx = IntxController(irqs, self.handlers)
        self.msi = MsiController(irqs, self.handlers, deliver=lambda n, m: self.delivered.append(("msi", n, m)))
        self.msix = MsixController(irqs, self.handlers, deliver=lambda n, m: self.delivered.append(("msix", n, m)))
        self.wiring = ConfigInterruptWiring(self.vc, intx=self.intx, msi=self.msi, msix=self.msix)
        if sync:
            self.wiring.sync()
        return self.wiring

    # -- the guest's config programming
    def program_msi(self, vectors: int = NMSI, data: int = 0x40, mask: int = 0) -> None:
        cap = self.vc.msi
        assert cap is not None
        self.vc.write_int(cap.offset + R.PCI_MSI_ADDRESS_LO, 4, MSI_ADDR)
        self.vc.write_int(cap.offset + R.PCI_MSI_ADDRESS_HI, 4, 0)
        self.vc.write_int(cap.data_off, 2, data)
        self.vc.write_int(cap.mask_off, 4, mask)
        qsize = (vectors - 1).bit_length() << 4
        self.vc.write_int(cap.offset + R.PCI_MSI_FLAGS, 2, cap.flags | qsize | R.PCI_MSI_FLAGS_ENABLE)

    def msi_off(self) -> None:
        cap = self.vc.msi
        assert cap is not None
        self.vc.write_int(cap.offset + R.PCI_MSI_FLAGS, 2, cap.flags & ~R.PCI_MSI_FLAGS_ENABLE)

    def msix_entry(self, nr: int, data: int) -> None:
        """Address and data of table entry ``nr`` (its mask bit untouched)."""
        lay = self.msix_layout()
        base = lay.table_offset + nr * R.PCI_MSIX_ENTRY_SIZE
        assert self.vc.bar_write(lay.table_bar, base + R.PCI_MSIX_ENTRY_LOWER_ADDR, MSI_ADDR.to_bytes(4, "little"))
        assert self.vc.bar_write(lay.table_bar, base + R.PCI_MSIX_ENTRY_UPPER_ADDR, bytes(4))
        assert self.vc.bar_write(lay.table_bar, base + R.PCI_MSIX_ENTRY_DATA, data.to_bytes(4, "little"))

    def msix_mask(self, nr: int, masked: bool) -> None:
        lay = self.msix_layout()
        off = lay.table_offset + nr * R.PCI_MSIX_ENTRY_SIZE + R.PCI_MSIX_ENTRY_VECTOR_CTRL
        assert self.vc.bar_write(lay.table_bar, off, (1 if masked else 0).to_bytes(4, "little"))

    def msix_enable(self, on: bool = True) -> None:
        cap = self.vc.msix
        assert cap is not None
        flags = self.vc.get_int(cap.offset + R.PCI_MSIX_FLAGS, 2)
        flags = flags | R.PCI_MSIX_FLAGS_ENABLE if on else flags & ~R.PCI_MSIX_FLAGS_ENABLE
        self.vc.write_int(cap.offset + R.PCI_MSIX_FLAGS, 2, flags)

    def msix_layout(self) -> Any:
        assert self.vc.msix is not None
        return self.vc.msix.layout

    # -- the device side
    def fire(self, kind: str, *vectors: int) -> list[tuple[str, int, MsiMessage]]:
        """The function raises ``vectors``; returns what the VMM's handlers delivered."""
        before = len(self.delivered)
        for v in vectors:
            self.hw.raise_irq(kind, v)
        self.handlers.dispatch(0.2)
        self.handlers.dispatch(0)
        return self.delivered[before:]

    def close(self) -> None:
        if self.wiring is not None:
            self.wiring.close()
        self._cm.__exit__(None, None, None)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    before = open_fds()
    yield Kernel()
    assert open_fds() == before, "descriptors leaked"


@pytest.fixture(params=[True, False], ids=["dynamic", "noresize"])
def guest(kernel: Kernel, request: pytest.FixtureRequest) -> Iterator[Guest]:
    g = Guest(kernel, dynamic=request.param)
    yield g
    g.close()


def fail_set_irqs(monkeypatch: pytest.MonkeyPatch, kernel: Kernel, times: int = 1_000_000) -> list[int]:
    """Make the next ``times`` SET_IRQS fail with EINVAL before reaching the kernel; returns a call counter."""
    real = kernel.ioctl
    failed: list[int] = []

    def ioctl(fd: int, request: int, arg: Any = 0) -> int:
        if request == uv.VFIO_DEVICE_SET_IRQS and len(failed) < times:
            failed.append(int(arg.index))
            raise OSError(errno.EINVAL, "injected SET_IRQS failure")
        return int(real(fd, request, arg))

    monkeypatch.setattr(kernel, "ioctl", ioctl)
    return failed


# -- MSI ---------------------------------------------------------------------------------------------

def test_guest_msi_enable_programs_the_device_and_disable_tears_down(guest: Guest) -> None:
    guest.wire(sync=True)
    assert guest.core.irq_type == INTX and guest.intx.enabled  # INTx while the guest allows it
    guest.program_msi(data=0x40)
    assert guest.core.irq_type == MSI and not guest.intx.enabled  # INTx had to go first
    assert sorted(guest.core.irq_ctx) == list(range(NMSI)) and sorted(guest.msi.vectors) == list(range(NMSI))
    got = guest.fire("msi", 0, 3)
    assert [(k, n, m.address, m.data) for k, n, m in got] == [("msi", 0, MSI_ADDR, 0x40), ("msi", 3, MSI_ADDR, 0x43)]

    cap = guest.vc.msi
    assert cap is not None
    guest.vc.write_int(cap.data_off, 2, 0x80)  # rewrite while enabled: msi-update
    assert [m.data for _, _, m in guest.fire("msi", 1)] == [0x81]

    guest.msi_off()
    assert not guest.msi.vectors and len(guest.handlers) == 1  # only INTx's eventfd is left
    assert guest.core.irq_type == INTX and guest.intx.enabled  # INTx given back (irq_ctx 0 is its line)
    assert guest.fire("msi", 0) == []


def test_intx_follows_the_command_register(guest: Guest) -> None:
    guest.wire(sync=True)
    cmd = guest.vc.read_int(R.PCI_COMMAND, 2)
    guest.vc.write_int(R.PCI_COMMAND, 2, cmd | R.PCI_COMMAND_INTX_DISABLE)
    assert not guest.intx.enabled and guest.core.irq_type not in IRQ_NONE_TYPES
    guest.vc.write_int(R.PCI_COMMAND, 2, cmd)
    assert guest.intx.enabled and guest.core.irq_type == INTX
    guest.hw.raise_irq("intx")
    guest.handlers.dispatch(0.2)
    assert guest.intx.interrupts == 1 and guest.intx.pending


# -- MSI-X -------------------------------------------------------------------------------------------

def test_msix_enable_and_unmask_deliver_and_a_masked_vector_is_held_until_unmask(guest: Guest) -> None:
    guest.wire()
    for n in range(NMSIX):
        guest.msix_entry(n, 0x50 + n)
    guest.msix_mask(1, False)  # unmasked before enable: used by the enable itself
    guest.msix_enable()
    assert guest.core.irq_type == MSIX and sorted(guest.msix.vectors) == [1]
    assert [(n, m.data) for _, n, m in guest.fire("msix", 1)] == [(1, 0x51)]

    guest.msix_mask(5, False)  # the guest unmasks a vector later: it gets an eventfd then
    assert sorted(guest.msix.vectors) == [1, 5] and 5 in guest.core.irq_ctx
    assert [(n, m.data) for _, n, m in guest.fire("msix", 5)] == [(5, 0x55)]

    guest.msix_mask(5, True)  # masked at the guest: the host vector stays, a firing becomes pending
    assert guest.fire("msix", 5) == []
    assert guest.msix.pending[5]
    guest.msix_mask(5, False)  # unmask delivers what was pending
    got = guest.delivered[-1:]
    assert [(n, m.data) for _, n, m in got] == [(5, 0x55)] and not guest.msix.pending[5]

    guest.msix_enable(False)
    assert not guest.msix.enabled and not guest.msix.vectors and guest.core.irq_type == INTX
    assert guest.fire("msix", 1) == []


def test_function_mask_masks_every_vector(guest: Guest) -> None:
    guest.wire()
    for n in range(2):
        guest.msix_entry(n, 0x60 + n)
        guest.msix_mask(n, False)
    guest.msix_enable()
    cap = guest.vc.msix
    assert cap is not None
    flags = guest.vc.get_int(cap.offset + R.PCI_MSIX_FLAGS, 2)
    guest.vc.write_int(cap.offset + R.PCI_MSIX_FLAGS, 2, flags | R.PCI_MSIX_FLAGS_MASKALL)
    assert guest.fire("msix", 0, 1) == [] and guest.msix.pending[:2] == [True, True]
    guest.vc.write_int(cap.offset + R.PCI_MSIX_FLAGS, 2, flags)
    assert sorted(n for _, n, _ in guest.delivered) == [0, 1]


# -- restore on a second device ----------------------------------------------------------------------

def _source_with_msix(kernel: Kernel) -> bytes:
    src = Guest(kernel)
    try:
        for n in range(NMSIX):
            src.msix_entry(n, 0x70 + n)
        src.msix_mask(2, False)
        src.msix_mask(6, False)
        src.msix_enable()
        return save_state(src.vc)
    finally:
        src.close()


def test_restore_with_wiring_attached_programs_the_destination(kernel: Kernel) -> None:
    blob = _source_with_msix(kernel)
    dst = Guest(kernel)
    try:
        dst.wire(sync=True)
        assert dst.core.irq_type == INTX
        restore_state(dst.vc, blob)
        assert dst.core.irq_type == MSIX and sorted(dst.msix.vectors) == [2, 6]
        assert sorted(dst.core.irq_ctx) == [2, 6]
        # entry 3 is masked and was never used: the host keeps it masked at the device, nothing arrives
        assert [(n, m.data) for _, n, m in dst.fire("msix", 6, 3)] == [(6, 0x76)]
    finally:
        dst.close()


def test_sync_after_restore_programs_a_late_wiring(kernel: Kernel) -> None:
    blob = _source_with_msix(kernel)
    dst = Guest(kernel)
    try:
        restore_state(dst.vc, blob)  # nobody listening: nothing programmed yet
        assert dst.core.irq_type not in IRQ_NONE_TYPES
        dst.wire(sync=True)
        assert dst.core.irq_type == MSIX and sorted(dst.msix.vectors) == [2, 6]
        assert [(n, m.data) for _, n, m in dst.fire("msix", 2)] == [(2, 0x72)]
        assert dst.wiring is not None
        dst.wiring.sync()  # idempotent
        assert sorted(dst.core.irq_ctx) == [2, 6]
    finally:
        dst.close()


def test_restore_of_msi_state(kernel: Kernel) -> None:
    src = Guest(kernel)
    try:
        src.program_msi(vectors=2, data=0x90)
        blob = save_state(src.vc)
    finally:
        src.close()
    dst = Guest(kernel)
    try:
        dst.wire()
        restore_state(dst.vc, blob)
        assert dst.core.irq_type == MSI and sorted(dst.core.irq_ctx) == [0, 1]
        assert [m.data for _, _, m in dst.fire("msi", 1)] == [0x91]
    finally:
        dst.close()


# -- failures and cleanup ----------------------------------------------------------------------------

def test_msi_enable_failure_names_the_ioctl_and_leaves_nothing_enabled(guest: Guest, kernel: Kernel,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    guest.wire()
    fail_set_irqs(monkeypatch, kernel)
    with pytest.raises(VfioError) as e:
        guest.program_msi()
    assert e.value.errno == errno.EINVAL and e.value.ioctl == "VFIO_DEVICE_SET_IRQS"
    assert "VFIO_DEVICE_SET_IRQS" in str(e.value) and "EINVAL" in str(e.value)
    assert not guest.msi.vectors and not guest.core.irq_ctx and guest.core.irq_type not in IRQ_NONE_TYPES
    assert len(guest.handlers) == 0


def test_msix_enable_failure_leaves_nothing_enabled(guest: Guest, kernel: Kernel,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    guest.wire()
    for n in range(3):
        guest.msix_entry(n, 0x20 + n)
        guest.msix_mask(n, False)
    fail_set_irqs(monkeypatch, kernel)
    with pytest.raises(VfioError, match="VFIO_DEVICE_SET_IRQS"):
        guest.msix_enable()
    assert not guest.msix.enabled and not guest.msix.vectors and len(guest.handlers) == 0
    assert guest.core.irq_type not in IRQ_NONE_TYPES and not guest.core.irq_ctx


def test_msix_failure_part_way_rolls_back(guest: Guest, kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The enable call succeeds, using an unmasked vector fails: the whole enable is undone."""
    guest.wire()
    guest.msix_entry(4, 0x24)
    guest.msix_mask(4, False)
    real = kernel.ioctl
    calls: list[int] = []

    def ioctl(fd: int, request: int, arg: Any = 0) -> int:
        if request == uv.VFIO_DEVICE_SET_IRQS:
            calls.append(int(arg.start))
            if len(calls) == 2:  # the first (MSI-X on, no vector) passes; using vector 4 fails
                raise OSError(errno.EINVAL, "injected")
        return int(real(fd, request, arg))

    monkeypatch.setattr(kernel, "ioctl", ioctl)
    with pytest.raises(VfioError):
        guest.msix_enable()
    assert not guest.msix.enabled and not guest.msix.vectors and len(guest.handlers) == 0
    assert guest.core.irq_type not in IRQ_NONE_TYPES and not guest.core.irq_ctx


def test_msix_unmask_failure_undoes_the_vector(guest: Guest, kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    guest.wire()
    for n in range(NMSIX):
        guest.msix_entry(n, 0x30 + n)
    guest.msix_mask(0, False)
    guest.msix_enable()
    fail_set_irqs(monkeypatch, kernel, times=1)
    with pytest.raises(VfioError) as e:
        guest.msix_mask(3, False)
    assert e.value.errno == errno.EINVAL
    assert 3 not in guest.msix.vectors and 3 not in guest.core.irq_ctx and guest.msix.masked[3]
    if guest.msix.noresize:  # growth could have left the index off: everything was released
        assert not guest.msix.enabled and not guest.core.irq_ctx
    else:  # only the failed vector was undone; the others keep working
        assert [n for _, n, _ in guest.fire("msix", 0)] == [0]


def test_close_releases_every_descriptor(kernel: Kernel) -> None:
    g = Guest(kernel)
    try:
        before = open_fds()
        wiring = g.wire(sync=True)
        for n in range(NMSIX):
            g.msix_entry(n, 0x40 + n)
            g.msix_mask(n, False)
        g.msix_enable()
        assert open_fds() > before
        wiring.close()
        assert open_fds() == before
        assert not g.core.irq_ctx and g.core.irq_type not in IRQ_NONE_TYPES and len(g.handlers) == 0
        g.msix_enable(False)  # no longer listening: nothing happens, nothing fails
        g.program_msi()
        assert g.core.irq_type not in IRQ_NONE_TYPES
        wiring.close()  # idempotent
    finally:
        g.close()


def test_controller_and_config_must_match(kernel: Kernel) -> None:
    g = Guest(kernel)
    try:
        irqs = VfioIrqs(g.region)
        vc = VirtualConfig(g.region)
        vc.msix = None  # a config without MSI-X cannot drive an MSI-X controller
        with pytest.raises(ValueError, match="MSI-X"):
            ConfigInterruptWiring(vc, msix=MsixController(irqs, g.handlers))
    finally:
        g.close()
