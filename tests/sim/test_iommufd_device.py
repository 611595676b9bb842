"""iommufd with devices: SEMANTICS 2.3 (HWPT) and 2.4 (VFIO cdev binding) through the syscall surface.

The device is QEMU's edu behind its VFIO cdev: bound with
``VFIO_DEVICE_BIND_IOMMUFD``, attached with ``VFIO_DEVICE_ATTACH_IOMMUFD_PT``,
and made to DMA through its own registers (BAR0) so the translation path is
the one a real program exercises.  Tests that need the model itself (faults
the device swallows, capabilities a real IOMMU lacks) are skipped on a real
kernel.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from typing import Any, Iterator, Optional

import pytest

from pyvfio.uapi import iommufd as ui
from pyvfio.uapi import vfio as uv

from test_iommufd import (  # the shared helpers of the device-less tests
    FIXED, NONCANONICAL, PAGE, RW, U64_MAX, Ictx, W, addr_of, allow, check_model, expect, is_sim, memfd, mk,
    proc_fds,
)

MSI_LO, MSI_HI = 0xFEE00000, 0xFEEFFFFF
APERTURE_LAST = (1 << 39) - 1  # QEMU 7.2 intel-iommu (aw-bits 39), measured on 7.3.4 in the VM lane
VTD_CAP_REG, VTD_ECAP_REG = 0xD2008C22260286, 0xF00F4A  # what that IOMMU reports through IOMMU_GET_HW_INFO
CONFIG = uv.VFIO_PCI_CONFIG_REGION_INDEX << 40
EDU_BUF = 0x40000


class Cdev:
    """A VFIO device opened through its cdev, with the iommufd ioctls and edu DMA helpers."""

    def __init__(self, k: Any, path: str) -> None:
        self.k = k
        self.fd = k.open(path)

    def ioctl(self, request: int, arg: Any) -> int:
        return int(self.k.ioctl(self.fd, request, arg))

    def bind(self, iommufd: int, **kw: Any) -> int:
        b = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=iommufd)
        for name, value in kw.items():
            setattr(b, name, value)
        self.ioctl(uv.VFIO_DEVICE_BIND_IOMMUFD, b)
        return int(b.out_devid)

    def attach(self, pt_id: int, **kw: Any) -> int:
        a = uv.vfio_device_attach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_attach_iommufd_pt), pt_id=pt_id)
        for name, value in kw.items():
            setattr(a, name, value)
        self.ioctl(uv.VFIO_DEVICE_ATTACH_IOMMUFD_PT, a)
        return int(a.pt_id)

    def detach(self, **kw: Any) -> None:
        d = uv.vfio_device_detach_iommufd_pt(argsz=ctypes.sizeof(uv.vfio_device_detach_iommufd_pt))
        for name, value in kw.items():
            setattr(d, name, value)
        self.ioctl(uv.VFIO_DEVICE_DETACH_IOMMUFD_PT, d)

    def bus_master(self) -> None:
        cmd = struct.unpack("<H", self.k.pread(self.fd, 2, CONFIG + 4))[0]
        self.k.pwrite(self.fd, struct.pack("<H", cmd | 0x4), CONFIG + 4)

    def _reg(self, off: int, value: int) -> None:
        self.k.pwrite(self.fd, struct.pack("<Q", value), off)

    def copy(self, src_iova: int, dst_iova: int, n: int) -> None:
        """edu DMA: memory at ``src_iova`` -> device buffer -> memory at ``dst_iova`` (n < 4096)."""
        self._reg(0x80, src_iova)
        self._reg(0x88, EDU_BUF)
        self._reg(0x90, n)
        self._reg(0x98, 0x1)
        self._reg(0x80, EDU_BUF)
        self._reg(0x88, dst_iova)
        self._reg(0x90, n)
        self._reg(0x98, 0x1 | 0x2)

    def close(self) -> None:
        self.k.close(self.fd)


class Env:
    """A kernel, an iommufd, the edu cdev and 2 MiB-aligned memory to map."""

    def __init__(self, k: Any, edu: Any) -> None:
        if edu.cdev is None:
            pytest.skip("no VFIO cdev for the edu device")
        self.k = k
        self.edu = edu
        self.ictx = Ictx(k)
        self.dev = Cdev(k, edu.cdev)
        self.mem = mmap.mmap(-1, 4 << 20)
        base = addr_of(self.mem)
        self.off = (-base) % (2 << 20)
        self.va = base + self.off

    def buf(self, offset: int, n: int) -> bytes:
        return bytes(self.mem[self.off + offset: self.off + offset + n])

    def put(self, offset: int, data: bytes) -> None:
        self.mem[self.off + offset: self.off + offset + len(data)] = data

    def vdev(self) -> Any:
        return self.k.devices[self.edu.address]

    def bound(self) -> tuple[int, int]:
        """Bind, allocate an IOAS: (devid, ioas)."""
        return self.dev.bind(self.ictx.fd), self.ictx.ioas()

    def hwpt_alloc(self, dev_id: int, pt_id: int, flags: int = 0, **kw: Any) -> int:
        h = mk(ui.iommu_hwpt_alloc, dev_id=dev_id, pt_id=pt_id, flags=flags, **kw)
        self.ictx.ioctl(ui.IOMMU_HWPT_ALLOC, h)
        return int(h.out_hwpt_id)


def _env(kernel: Any, edu: Any) -> Iterator[Env]:
    e = Env(kernel, edu)
    yield e
    check_model(kernel)
    for close in (e.dev.close, e.ictx.close):
        try:
            close()
        except OSError:
            pass
    if is_sim(kernel):
        assert kernel.open_files() == [], "descriptors left open"


@pytest.fixture
def env(kernel: Any, edu: Any) -> Iterator[Env]:
    yield from _env(kernel, edu)


# == 2.4 BIND ========================================================================================
def test_bind_writes_devid_and_grants_access(env: Env) -> None:
    """SEMANTICS 2.4 / vm NOTES: before BIND every ioctl is EINVAL (DEVICE_GET_INFO too); BIND writes
    out_devid (a DEVICE object: DESTROY is EBUSY) and grants access."""
    info = uv.vfio_device_info(argsz=ctypes.sizeof(uv.vfio_device_info))
    expect(errno.EINVAL, env.dev.ioctl, uv.VFIO_DEVICE_GET_INFO, info)
    devid = env.dev.bind(env.ictx.fd)
    assert devid >= 1
    env.dev.ioctl(uv.VFIO_DEVICE_GET_INFO, info)
    assert info.num_regions >= 8
    expect(errno.EBUSY, env.ictx.destroy, devid)


def test_bind_argsz(env: Env) -> None:
    """SEMANTICS 2.4 / vm NOTES: argsz < 16 -> EINVAL; argsz 16 (the minimum) works."""
    expect(errno.EINVAL, env.dev.bind, env.ictx.fd, argsz=15)
    assert env.dev.bind(env.ictx.fd, argsz=16) >= 1


def test_bind_nonzero_tail_e2big(env: Env) -> None:
    """device_cdev.c: bytes past the struct the kernel knows must be zero -> E2BIG."""
    n = ctypes.sizeof(uv.vfio_device_bind_iommufd)
    buf = (ctypes.c_uint8 * (n + 8))()
    struct.pack_into("<IIi", buf, 0, n + 8, 0, env.ictx.fd)
    buf[n + 1] = 1
    expect(errno.E2BIG, env.dev.ioctl, uv.VFIO_DEVICE_BIND_IOMMUFD, buf)


def test_bind_bad_fields_einval(env: Env) -> None:
    """SEMANTICS 2.4: iommufd < 0 or an unknown flag -> EINVAL; a VF token for a device that takes none
    -> EINVAL."""
    expect(errno.EINVAL, env.dev.bind, -1)
    expect(errno.EINVAL, env.dev.bind, env.ictx.fd, flags=2)
    token = (ctypes.c_uint8 * 16)()
    expect(errno.EINVAL, env.dev.bind, env.ictx.fd, flags=uv.VFIO_DEVICE_BIND_FLAG_TOKEN,
           token_uuid_ptr=ctypes.addressof(token))


def test_bind_twice_einval(env: Env) -> None:
    """SEMANTICS 2.4 / vm NOTES: BIND on an already bound descriptor -> EINVAL."""
    env.dev.bind(env.ictx.fd)
    expect(errno.EINVAL, env.dev.bind, env.ictx.fd)


def test_bind_not_an_iommufd(env: Env) -> None:
    """device_cdev.c (iommufd_ctx_from_fd): a closed descriptor -> EBADF; one that is not an iommufd
    (an eventfd, a VFIO container) -> EBADFD."""
    expect(errno.EBADF, env.dev.bind, 1000)
    efd = os.eventfd(0, os.EFD_CLOEXEC)
    expect(errno.EBADFD, env.dev.bind, efd)
    os.close(efd)
    cont = env.k.open("/dev/vfio/vfio")
    expect(errno.EBADFD, env.dev.bind, cont)
    env.k.close(cont)
    assert env.dev.bind(env.ictx.fd) >= 1


def test_bind_second_cdev_descriptor_einval(env: Env) -> None:
    """vfio_main.c (vfio_df_open): a device already opened through another cdev descriptor -> EINVAL."""
    env.dev.bind(env.ictx.fd)
    other = Cdev(env.k, env.edu.cdev)
    expect(errno.EINVAL, other.bind, env.ictx.fd)
    other.close()


def test_bind_on_group_descriptor_einval(kernel: Any, edu: Any) -> None:
    """SEMANTICS 2.4: BIND on a device fd obtained from a group -> EINVAL."""
    ictx = Ictx(kernel)
    group = kernel.open(f"/dev/vfio/{edu.group}")
    kernel.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int(ictx.fd))
    dfd = kernel.ioctl(group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(edu.address.encode()))
    b = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=ictx.fd)
    expect(errno.EINVAL, kernel.ioctl, dfd, uv.VFIO_DEVICE_BIND_IOMMUFD, b)
    check_model(kernel)
    kernel.close(dfd)
    kernel.close(group)
    ictx.close()
    if is_sim(kernel):
        assert kernel.open_files() == []


# == 2.4 ATTACH / DETACH =============================================================================
def test_attach_ioas_returns_auto_hwpt(env: Env) -> None:
    """SEMANTICS 2.4 / vm NOTES: attaching to an IOAS creates an auto HWPT and writes its id into pt_id;
    DESTROY of the attached IOAS or HWPT -> EBUSY."""
    devid, ioas = env.bound()
    hwpt = env.dev.attach(ioas)
    assert hwpt not in (ioas, devid)
    expect(errno.EBUSY, env.ictx.destroy, ioas)
    expect(errno.EBUSY, env.ictx.destroy, hwpt)
    expect(errno.EBUSY, env.ictx.destroy, devid)


def test_attach_argument_checks(env: Env) -> None:
    """device_cdev.c: ATTACH argsz < 12 or unknown flags -> EINVAL; ATTACH_PASID without driver PASID ops
    (the simulated vfio-pci has none) -> EOPNOTSUPP; an unknown pt_id -> ENOENT; a pt_id that is neither
    IOAS nor HWPT -> EINVAL."""
    devid, ioas = env.bound()
    expect(errno.EINVAL, env.dev.attach, ioas, argsz=11)
    expect(errno.EINVAL, env.dev.attach, ioas, flags=2)
    if is_sim(env.k):  # real vfio-pci has PASID attach ops: the answer then depends on the device
        expect(errno.EOPNOTSUPP, env.dev.attach, ioas, flags=uv.VFIO_DEVICE_ATTACH_PASID)
    expect(errno.ENOENT, env.dev.attach, 99)
    expect(errno.EINVAL, env.dev.attach, devid)
    check_model(env.k)


def test_attach_before_bind_einval(env: Env) -> None:
    """SEMANTICS 2.4: ATTACH/DETACH on an unbound cdev -> EINVAL (access not granted)."""
    ioas = env.ictx.ioas()
    expect(errno.EINVAL, env.dev.attach, ioas)
    expect(errno.EINVAL, env.dev.detach)


def test_attach_narrows_iova_ranges(env: Env) -> None:
    """SEMANTICS 2.4: attach adds the device's reserved regions (x86 MSI window) and the domain's limits
    (39-bit aperture of QEMU's intel-iommu, 4 KiB alignment) to the IOAS; mapping into them -> EINVAL;
    detach restores."""
    _, ioas = env.bound()
    env.dev.attach(ioas)
    ranges, align = env.ictx.ranges(ioas)
    top = APERTURE_LAST
    assert (ranges, align) == ([(0, MSI_LO - 1), (MSI_HI + 1, top)], PAGE)
    expect(errno.EINVAL, env.ictx.map, ioas, env.va, PAGE, MSI_LO)
    expect(errno.EINVAL, env.ictx.map, ioas, env.va, PAGE, top + 1)
    expect(errno.EINVAL, env.ictx.map, ioas, env.va, 0x800)
    expect(errno.EADDRINUSE, allow, env.ictx, ioas, [(MSI_LO - PAGE, MSI_LO + PAGE)])
    env.dev.detach()
    assert env.ictx.ranges(ioas) == ([(0, U64_MAX)], 1)


def test_attach_reserved_conflict_eaddrinuse(env: Env) -> None:
    """SEMANTICS 2.4: a mapping or an allowed range over the MSI window -> EADDRINUSE, nothing attached."""
    _, ioas = env.bound()
    env.ictx.map(ioas, env.va, PAGE, MSI_LO + 0x1000)
    expect(errno.EADDRINUSE, env.dev.attach, ioas)
    assert env.ictx.unmap(ioas, 0, U64_MAX) == PAGE
    allow(env.ictx, ioas, [(MSI_LO, MSI_LO + 0xFFFF)])
    expect(errno.EADDRINUSE, env.dev.attach, ioas)
    assert env.ictx.ranges(ioas) == ([(0, U64_MAX)], 1)
    env.ictx.destroy(ioas)  # no auto HWPT was left holding it
    check_model(env.k)


def test_attach_unaligned_mapping_eaddrinuse(env: Env) -> None:
    """io_pagetable.c (iopt_table_add_domain): an existing sub-page mapping cannot meet the domain's 4 KiB
    alignment -> EADDRINUSE."""
    _, ioas = env.bound()
    env.ictx.map(ioas, env.va, 0x800, 0x10000)
    expect(errno.EADDRINUSE, env.dev.attach, ioas)


def test_attach_pins_mappings_efault(env: Env) -> None:
    """SEMANTICS 2.2 (pinning): the first domain pins every mapping; an unmapped user_va -> EFAULT at attach."""
    _, ioas = env.bound()
    env.ictx.map(ioas, NONCANONICAL, PAGE, 0x10000)
    expect(errno.EFAULT, env.dev.attach, ioas)
    env.ictx.unmap(ioas, 0x10000, PAGE)
    env.dev.attach(ioas)
    expect(errno.EFAULT, env.ictx.map, ioas, NONCANONICAL, PAGE, 0x20000)  # pinned at map time now


def test_detach_argument_checks_and_idempotence(env: Env) -> None:
    """device_cdev.c: DETACH argsz < 8 or unknown flags -> EINVAL; DETACH_PASID -> EOPNOTSUPP; detaching an
    unattached device is a no-op success."""
    env.bound()
    expect(errno.EINVAL, env.dev.detach, argsz=7)
    expect(errno.EINVAL, env.dev.detach, flags=2)
    if is_sim(env.k):
        expect(errno.EOPNOTSUPP, env.dev.detach, flags=uv.VFIO_DEVICE_DETACH_PASID)
    env.dev.detach()
    env.dev.detach()


def test_detach_destroys_auto_hwpt(env: Env) -> None:
    """SEMANTICS 2.1: the auto HWPT goes with its last device; the IOAS is free to destroy."""
    _, ioas = env.bound()
    hwpt = env.dev.attach(ioas)
    env.dev.detach()
    expect(errno.ENOENT, env.ictx.destroy, hwpt)
    env.ictx.destroy(ioas)


def test_attach_replace_moves_to_new_ioas(env: Env) -> None:
    """SEMANTICS 2.4: ATTACH on an attached device replaces its page table (no detach needed); the old auto
    HWPT is destroyed and the reserved window moves with the device."""
    _, a = env.bound()
    b = env.ictx.ioas()
    ha = env.dev.attach(a)
    assert env.dev.attach(a) == ha  # the same IOAS again: the same HWPT
    hb = env.dev.attach(b)
    assert hb != ha
    expect(errno.ENOENT, env.ictx.destroy, ha)
    assert env.ictx.ranges(a) == ([(0, U64_MAX)], 1)
    assert env.ictx.ranges(b)[0][0] == (0, MSI_LO - 1)
    expect(errno.EBUSY, env.ictx.destroy, b)
    env.ictx.destroy(a)


def test_attach_manual_hwpt(env: Env) -> None:
    """SEMANTICS 2.4: pt_id may be a HWPT from HWPT_ALLOC; it survives detach (not an auto domain) and an
    IOAS attach never picks it."""
    devid, ioas = env.bound()
    hwpt = env.hwpt_alloc(devid, ioas)
    assert env.dev.attach(hwpt) == hwpt
    env.dev.detach()
    auto = env.dev.attach(ioas)
    assert auto != hwpt
    env.dev.detach()
    env.ictx.destroy(hwpt)
    env.ictx.destroy(ioas)


def test_dma_through_auto_hwpt(env: Env) -> None:
    """SEMANTICS 2.2/2.4: edu DMA reaches this process's memory through the IOAS (user VA and memfd)."""
    _, ioas = env.bound()
    env.dev.attach(ioas)
    env.dev.bus_master()
    env.put(0, b"ping through the IOMMU")
    src = env.ictx.map(ioas, env.va, PAGE, 0x100000)
    dst = env.ictx.map(ioas, env.va + 0x10000, PAGE, 0x200000)
    env.dev.copy(src, dst, 22)
    assert env.buf(0x10000, 22) == b"ping through the IOMMU"
    fd = memfd(data=b"from a memfd")
    fiova = env.ictx.map_file(ioas, fd, 0, PAGE, iova=0x300000)
    env.dev.copy(fiova, dst + 0x100, 12)
    assert env.buf(0x10100, 12) == b"from a memfd"
    env.dev.copy(src, fiova + 0x20, 4)
    assert os.pread(fd, 4, 0x20) == b"ping"
    os.close(fd)


def test_dma_blocked_after_detach(env: Env) -> None:
    """SEMANTICS 2.4: after DETACH the device is in a blocking DMA state."""
    _, ioas = env.bound()
    env.dev.attach(ioas)
    env.dev.bus_master()
    src = env.ictx.map(ioas, env.va, PAGE, 0x100000)
    dst = env.ictx.map(ioas, env.va + PAGE, PAGE, 0x101000)
    env.put(0, b"abcd")
    env.dev.detach()
    env.dev.copy(src, dst, 4)
    assert env.buf(PAGE, 4) == bytes(4)
    if is_sim(env.k):
        assert env.vdev().domain is None
        expect(errno.EINVAL, env.vdev().dma_read, src, 4)


def test_dma_faults_in_the_model(env: Env) -> None:
    """hw_pagetable (model): device DMA to an unmapped IOVA -> EFAULT, a write to a read-only mapping ->
    EPERM; the edu device swallows these, so they are checked on the model."""
    if not is_sim(env.k):
        pytest.skip("IOMMU faults are not visible through the surface")
    _, ioas = env.bound()
    env.dev.attach(ioas)
    env.ictx.map(ioas, env.va, PAGE, 0x100000, flags=ui.IOMMU_IOAS_MAP_READABLE)
    vdev = env.vdev()
    expect(errno.EFAULT, vdev.dma_read, 0x200000, 4)
    expect(errno.EFAULT, vdev.dma_read, 0x100ffe + 0x1000, 4)
    expect(errno.EPERM, vdev.dma_write, 0x100000, b"x")
    env.ictx.map(ioas, env.va + PAGE, PAGE, 0x101000, flags=W)
    expect(errno.EPERM, vdev.dma_read, 0x101000, 1)
    vdev.dma_write(0x101000, b"w")
    assert env.buf(PAGE, 1) == b"w"


def test_two_devices_share_the_auto_hwpt(kernel: Any) -> None:
    """device.c (auto_get_domain): a second device attaching to the same IOAS reuses the compatible auto
    HWPT; it lives until both have left."""
    if not is_sim(kernel):
        pytest.skip("needs two edu devices")
    d1, d2 = kernel.add_device("edu"), kernel.add_device("edu")
    ictx = Ictx(kernel)
    c1, c2 = Cdev(kernel, d1.cdev), Cdev(kernel, d2.cdev)
    c1.bind(ictx.fd)
    c2.bind(ictx.fd)
    ioas = ictx.ioas()
    h = c1.attach(ioas)
    assert c2.attach(ioas) == h
    c1.detach()
    expect(errno.EBUSY, ictx.destroy, h)
    check_model(kernel)
    c2.close()
    expect(errno.ENOENT, ictx.destroy, h)
    c1.close()
    ictx.close()
    assert kernel.open_files() == []


def test_group_devices_share_one_hwpt(kernel: Any) -> None:
    """device.c (iommufd_hw_pagetable_attach): devices of one IOMMU group must use the same page table -> EINVAL."""
    if not is_sim(kernel):
        pytest.skip("needs two devices in one group")
    d1 = kernel.add_device("edu")
    d2 = kernel.add_device("edu", group=d1.group_id)
    ictx = Ictx(kernel)
    c1, c2 = Cdev(kernel, d1.cdev), Cdev(kernel, d2.cdev)
    c1.bind(ictx.fd)
    c2.bind(ictx.fd)
    a, b = ictx.ioas(), ictx.ioas()
    h = c1.attach(a)
    expect(errno.EINVAL, c2.attach, b)  # a new auto HWPT on b cannot hold the group
    assert c2.attach(a) == h
    check_model(kernel)
    for c in (c1, c2):
        c.close()
    ictx.close()
    assert kernel.open_files() == []


def test_group_bound_to_two_iommufds_ebusy(kernel: Any) -> None:
    """device.c (iommu_device_claim_dma_owner): one IOMMU group cannot be owned by two iommufds -> EBUSY."""
    if not is_sim(kernel):
        pytest.skip("needs two devices in one group")
    d1 = kernel.add_device("edu")
    d2 = kernel.add_device("edu", group=d1.group_id)
    i1, i2 = Ictx(kernel), Ictx(kernel)
    c1, c2 = Cdev(kernel, d1.cdev), Cdev(kernel, d2.cdev)
    c1.bind(i1.fd)
    expect(errno.EBUSY, c2.bind, i2.fd)
    c2.bind(i1.fd)
    for f in (c1.close, c2.close, i1.close, i2.close):
        f()
    assert kernel.open_files() == []


# == 2.3 HWPT_ALLOC ==================================================================================
def test_hwpt_alloc_paging(env: Env) -> None:
    """SEMANTICS 2.3: pt_id an IOAS -> a PAGING HWPT; it joins the IOAS (4 KiB alignment, 39-bit aperture,
    no device regions until a device attaches) and holds it (DESTROY IOAS -> EBUSY)."""
    devid, ioas = env.bound()
    hwpt = env.hwpt_alloc(devid, ioas)
    ranges, align = env.ictx.ranges(ioas)
    assert ranges == [(0, APERTURE_LAST)] and align == PAGE
    expect(errno.EBUSY, env.ictx.destroy, ioas)
    env.ictx.destroy(hwpt)
    assert env.ictx.ranges(ioas) == ([(0, U64_MAX)], 1)
    env.ictx.destroy(ioas)


def test_hwpt_alloc_bad_pt_id_einval(env: Env) -> None:
    """SEMANTICS 2.3: a bad pt_id -> EINVAL (not ENOENT); pt_id a DEVICE or FAULT object -> EINVAL."""
    devid, _ = env.bound()
    expect(errno.EINVAL, env.hwpt_alloc, devid, 77)
    expect(errno.EINVAL, env.hwpt_alloc, devid, devid)
    f = mk(ui.iommu_fault_alloc)
    env.ictx.ioctl(ui.IOMMU_FAULT_QUEUE_ALLOC, f)
    expect(errno.EINVAL, env.hwpt_alloc, devid, f.out_fault_id)
    env.k.close(f.out_fault_fd)


def test_hwpt_alloc_flag_checks_eopnotsupp(env: Env) -> None:
    """SEMANTICS 2.3: flags outside NEST_PARENT|DIRTY_TRACKING|FAULT_ID_VALID|PASID -> EOPNOTSUPP;
    FAULT_ID_VALID with NEST_PARENT -> EOPNOTSUPP; NEST_PARENT without nesting in the IOMMU -> EOPNOTSUPP;
    driver data for a paging domain -> EOPNOTSUPP."""
    devid, ioas = env.bound()
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, ioas, 1 << 4)
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, ioas,
           ui.IOMMU_HWPT_FAULT_ID_VALID | ui.IOMMU_HWPT_ALLOC_NEST_PARENT)
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, ioas, ui.IOMMU_HWPT_ALLOC_NEST_PARENT)
    data = (ctypes.c_uint8 * 24)()
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, ioas, 0, data_type=ui.IOMMU_HWPT_DATA_VTD_S1,
           data_len=24, data_uptr=ctypes.addressof(data))
    env.ictx.destroy(ioas)  # nothing left holding it


def test_hwpt_alloc_nested_refused(env: Env) -> None:
    """SEMANTICS 2.3: pt_id a PAGING HWPT asks for a nested one: flags other than FAULT_ID_VALID or no data
    -> EOPNOTSUPP; a parent that is an auto domain or not a nesting parent -> EINVAL."""
    devid, ioas = env.bound()
    parent = env.hwpt_alloc(devid, ioas)
    data = (ctypes.c_uint8 * 24)()
    kw = dict(data_type=ui.IOMMU_HWPT_DATA_VTD_S1, data_len=24, data_uptr=ctypes.addressof(data))
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, parent, ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, **kw)
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, parent)
    expect(errno.EINVAL, env.hwpt_alloc, devid, parent, 0, **kw)
    auto = env.dev.attach(ioas)
    expect(errno.EINVAL, env.hwpt_alloc, devid, auto, 0, **kw)


def test_hwpt_alloc_nested_needs_stage1(env: Env) -> None:
    """SEMANTICS 2.3 (model): with a nesting-capable IOMMU a NEST_PARENT HWPT exists, but a nested one on
    it still fails -> EOPNOTSUPP (the simulated IOMMU has no stage-1 format)."""
    if not is_sim(env.k):
        pytest.skip("configures the simulated IOMMU")
    devid, ioas = env.bound()
    env.vdev().ops.nesting_capable = True
    try:
        parent = env.hwpt_alloc(devid, ioas, ui.IOMMU_HWPT_ALLOC_NEST_PARENT)
        data = (ctypes.c_uint8 * 24)()
        expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, parent, 0, data_type=ui.IOMMU_HWPT_DATA_VTD_S1,
               data_len=24, data_uptr=ctypes.addressof(data))
    finally:
        env.vdev().ops.nesting_capable = False


def test_hwpt_alloc_fault_queue(env: Env) -> None:
    """SEMANTICS 2.3: FAULT_ID_VALID needs fault_id to name a FAULT object (ENOENT otherwise); the HWPT
    then holds the queue (DESTROY -> EBUSY); a device without PRI cannot attach to it (model: ENODEV)."""
    devid, ioas = env.bound()
    expect(errno.ENOENT, env.hwpt_alloc, devid, ioas, ui.IOMMU_HWPT_FAULT_ID_VALID, fault_id=ioas)
    f = mk(ui.iommu_fault_alloc)
    env.ictx.ioctl(ui.IOMMU_FAULT_QUEUE_ALLOC, f)
    env.k.close(f.out_fault_fd)
    hwpt = env.hwpt_alloc(devid, ioas, ui.IOMMU_HWPT_FAULT_ID_VALID, fault_id=f.out_fault_id)
    expect(errno.EBUSY, env.ictx.destroy, f.out_fault_id)
    if is_sim(env.k):
        expect(errno.ENODEV, env.dev.attach, hwpt)
    env.ictx.destroy(hwpt)
    env.ictx.destroy(f.out_fault_id)


def test_hwpt_alloc_pins_efault(env: Env) -> None:
    """SEMANTICS 2.3: the IOAS mappings are copied (pinned) into the new domain: bad memory -> EFAULT and
    no HWPT is left behind."""
    devid, ioas = env.bound()
    env.ictx.map(ioas, NONCANONICAL, PAGE, 0x10000)
    expect(errno.EFAULT, env.hwpt_alloc, devid, ioas)
    assert env.ictx.ranges(ioas) == ([(0, U64_MAX)], 1)


def test_hwpt_alloc_dirty_needs_capable_device(env: Env) -> None:
    """QEMU's intel-iommu cannot track dirty pages (7.3.4 in the VM lane): DIRTY_TRACKING -> EOPNOTSUPP and
    IOMMU_GET_HW_INFO lacks the capability.  (model) A dirty-tracking HWPT allocated while the device's
    IOMMU could track cannot take it once it cannot -> EINVAL."""
    devid, ioas = env.bound()
    expect(errno.EOPNOTSUPP, env.hwpt_alloc, devid, ioas, ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    h = mk(ui.iommu_hw_info, dev_id=devid)
    env.ictx.ioctl(ui.IOMMU_GET_HW_INFO, h)
    assert not h.out_capabilities & ui.IOMMU_HW_CAP_DIRTY_TRACKING
    if not is_sim(env.k):
        return
    env.vdev().ops.dirty_tracking_capable = True  # what add_device(..., iommu_dirty_tracking=True) sets
    try:
        dirty = env.hwpt_alloc(devid, ioas, ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        h = mk(ui.iommu_hw_info, dev_id=devid)
        env.ictx.ioctl(ui.IOMMU_GET_HW_INFO, h)
        assert h.out_capabilities & ui.IOMMU_HW_CAP_DIRTY_TRACKING
    finally:
        env.vdev().ops.dirty_tracking_capable = False
    expect(errno.EINVAL, env.dev.attach, dirty)


# == 2.3 dirty tracking ==============================================================================
def bitmap(env: Env, hwpt: int, iova: int, length: int, page_size: int = PAGE, flags: int = 0,
           data: Optional[Any] = None) -> list[int]:
    words = data if data is not None else (ctypes.c_uint64 * max(1, (length // max(page_size, 1) + 63) // 64))()
    g = mk(ui.iommu_hwpt_get_dirty_bitmap, hwpt_id=hwpt, iova=iova, length=length, page_size=page_size,
           flags=flags, data=ctypes.addressof(words))
    env.ictx.ioctl(ui.IOMMU_HWPT_GET_DIRTY_BITMAP, g)
    return [i for i in range(len(words) * 64) if words[i // 64] >> (i % 64) & 1]


def set_tracking(env: Env, hwpt: int, enable: bool) -> None:
    env.ictx.ioctl(ui.IOMMU_HWPT_SET_DIRTY_TRACKING,
                   mk(ui.iommu_hwpt_set_dirty_tracking, hwpt_id=hwpt,
                      flags=ui.IOMMU_HWPT_DIRTY_TRACKING_ENABLE if enable else 0))


@pytest.fixture
def dirty_env(kernel: Any) -> Iterator[Env]:
    """An edu behind a simulated IOMMU that can track dirty pages (an explicit opt-in of the model)."""
    if not is_sim(kernel):
        pytest.skip("QEMU's intel-iommu has no dirty tracking")
    from conftest import EduDevice

    d = kernel.add_device("edu", iommu_dirty_tracking=True)
    yield from _env(kernel, EduDevice(address=d.address, group=int(d.group_id), cdev=d.cdev))


@pytest.fixture
def dirty(dirty_env: Env) -> Iterator[tuple[Env, int, int]]:
    """A dirty-tracking HWPT with the device attached and 16 pages mapped at IOVA 0x100000."""
    env = dirty_env
    devid, ioas = env.bound()
    hwpt = env.hwpt_alloc(devid, ioas, ui.IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
    env.dev.attach(hwpt)
    env.dev.bus_master()
    env.ictx.map(ioas, env.va, 16 * PAGE, 0x100000)
    yield env, hwpt, ioas


def test_dirty_tracking_needs_dirty_hwpt_eopnotsupp(env: Env) -> None:
    """SEMANTICS 2.3: a domain without dirty ops (no DIRTY_TRACKING at alloc, auto domains) -> EOPNOTSUPP
    for SET_DIRTY_TRACKING and GET_DIRTY_BITMAP."""
    _, ioas = env.bound()
    auto = env.dev.attach(ioas)
    expect(errno.EOPNOTSUPP, set_tracking, env, auto, True)
    expect(errno.EOPNOTSUPP, bitmap, env, auto, 0, PAGE)


def test_dirty_bitmap_after_device_write(dirty: tuple[Env, int, int]) -> None:
    """SEMANTICS 2.3: with tracking on, device writes set bits (bit n = iova + n*page_size); reading clears
    unless NO_CLEAR; bits are only ever set in the user buffer."""
    env, hwpt, _ = dirty
    set_tracking(env, hwpt, True)
    env.dev.copy(0x100000, 0x103000, 8)       # a write to page 3
    env.dev.copy(0x100000, 0x105ffc, 8)       # a write straddling pages 5 and 6
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE, flags=ui.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) == [3, 5, 6]
    words = (ctypes.c_uint64 * 1)(1 << 9)
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE, data=words) == [3, 5, 6, 9]  # OR-ed, never cleared
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE) == []
    env.dev.copy(0x100000, 0x102000, 4)
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE, page_size=4 * PAGE) == [0]


def test_dirty_tracking_off_and_enable_clears(dirty: tuple[Env, int, int]) -> None:
    """SEMANTICS 2.3: writes while tracking is off are not recorded; enabling starts from a clean slate."""
    env, hwpt, _ = dirty
    env.dev.copy(0x100000, 0x101000, 4)
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE) == []
    set_tracking(env, hwpt, True)
    env.dev.copy(0x100000, 0x101000, 4)
    set_tracking(env, hwpt, True)  # enabling again clears for a fresh snapshot
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE) == []
    env.dev.copy(0x100000, 0x104000, 4)
    set_tracking(env, hwpt, False)
    env.dev.copy(0x100000, 0x105000, 4)
    assert bitmap(env, hwpt, 0x100000, 16 * PAGE) == []


def test_dirty_bitmap_range_checks(dirty: tuple[Env, int, int]) -> None:
    """SEMANTICS 2.3 (iommufd_check_iova_range): overflow -> EOVERFLOW; iova/end off the IOAS alignment or
    off page_size -> EINVAL; page_size 0 -> EINVAL."""
    env, hwpt, _ = dirty
    expect(errno.EOVERFLOW, bitmap, env, hwpt, U64_MAX - PAGE + 1, 2 * PAGE)
    expect(errno.EINVAL, bitmap, env, hwpt, 0x100800, PAGE)
    expect(errno.EINVAL, bitmap, env, hwpt, 0x100000, PAGE, 0)
    expect(errno.EINVAL, bitmap, env, hwpt, 0x100000, PAGE, 2 * PAGE)


def test_dirty_bitmap_unpinnable_buffer_enomem(dirty: tuple[Env, int, int]) -> None:
    """hw_pagetable.c: the bitmap buffer is pinned by iova_bitmap_alloc, whose failure iommufd reports as
    ENOMEM (not EFAULT)."""
    env, hwpt, _ = dirty
    g = mk(ui.iommu_hwpt_get_dirty_bitmap, hwpt_id=hwpt, iova=0x100000, length=16 * PAGE, page_size=PAGE,
           data=NONCANONICAL)
    expect(errno.ENOMEM, env.ictx.ioctl, ui.IOMMU_HWPT_GET_DIRTY_BITMAP, g)


def test_dirty_bitmap_uncovered_range_reports_prefix(dirty: tuple[Env, int, int]) -> None:
    """hw_pagetable.c: a range not covered by mappings is NOT an error (the driver's -EINVAL is dropped by
    iova_bitmap_for_each); bits come for the covered prefix only.  SEMANTICS 2.3 says EINVAL: the code
    disagrees."""
    env, hwpt, _ = dirty
    set_tracking(env, hwpt, True)
    env.dev.copy(0x100000, 0x10f000, 4)
    assert bitmap(env, hwpt, 0x100000, 32 * PAGE) == [15]
    assert bitmap(env, hwpt, 0x0, 0x200000) == []  # starts in a hole: nothing walked


# == 2.3 GET_HW_INFO and vIOMMU =======================================================================
def test_get_hw_info(env: Env) -> None:
    """7.3.4 + QEMU intel-iommu (VM lane): type INTEL_VTD, data_len comes back as the kernel's 24 bytes
    (whatever the caller offered, 0 being a valid probe), struct iommu_hw_info_vtd holds the erratum flag
    and QEMU's cap/ecap registers, the rest of the caller's buffer is zeroed; out_capabilities is
    PCI_ATS_NOT_SUPPORTED only (the edu has no ATS, the IOMMU no dirty tracking); another input type ->
    EOPNOTSUPP; a bad data pointer -> EFAULT."""
    devid, _ = env.bound()
    vtd_len = ctypes.sizeof(ui.iommu_hw_info_vtd)
    h = mk(ui.iommu_hw_info, dev_id=devid)
    env.ictx.ioctl(ui.IOMMU_GET_HW_INFO, h)
    assert (h.data_len, h.out_data_type) == (vtd_len, ui.IOMMU_HW_INFO_TYPE_INTEL_VTD) == (24, 1)
    data = (ctypes.c_uint8 * 64)(*([0xFF] * 64))
    h = mk(ui.iommu_hw_info, dev_id=devid, data_len=64, data_uptr=ctypes.addressof(data))
    env.ictx.ioctl(ui.IOMMU_GET_HW_INFO, h)
    assert h.data_len == vtd_len and bytes(data[vtd_len:]) == bytes(64 - vtd_len)
    vtd = ui.iommu_hw_info_vtd.from_buffer_copy(bytes(data[:vtd_len]))
    assert (vtd.flags, vtd.cap_reg, vtd.ecap_reg) == (ui.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, VTD_CAP_REG,
                                                      VTD_ECAP_REG)
    assert (h.out_capabilities, h.out_max_pasid_log2) == (ui.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, 0)
    short = (ctypes.c_uint8 * 8)(*([0xFF] * 8))  # a short buffer gets the first 8 bytes, data_len stays 24
    h = mk(ui.iommu_hw_info, dev_id=devid, data_len=8, data_uptr=ctypes.addressof(short))
    env.ictx.ioctl(ui.IOMMU_GET_HW_INFO, h)
    assert h.data_len == vtd_len and bytes(short) == bytes(data[:8])
    h = mk(ui.iommu_hw_info, dev_id=devid, flags=ui.IOMMU_HW_INFO_FLAG_INPUT_TYPE,
           in_data_type=ui.IOMMU_HW_INFO_TYPE_INTEL_VTD)
    env.ictx.ioctl(ui.IOMMU_GET_HW_INFO, h)
    assert h.out_data_type == ui.IOMMU_HW_INFO_TYPE_INTEL_VTD
    h = mk(ui.iommu_hw_info, dev_id=devid, flags=ui.IOMMU_HW_INFO_FLAG_INPUT_TYPE,
           in_data_type=ui.IOMMU_HW_INFO_TYPE_ARM_SMMUV3)
    expect(errno.EOPNOTSUPP, env.ictx.ioctl, ui.IOMMU_GET_HW_INFO, h)
    h = mk(ui.iommu_hw_info, dev_id=devid, data_len=8, data_uptr=NONCANONICAL)
    expect(errno.EFAULT, env.ictx.ioctl, ui.IOMMU_GET_HW_INFO, h)


def test_viommu_alloc_without_support_eopnotsupp(env: Env) -> None:
    """viommu.c: with a valid device the x86 IOMMU driver has no vIOMMU ops -> EOPNOTSUPP."""
    devid, _ = env.bound()
    v = mk(ui.iommu_viommu_alloc, type=ui.IOMMU_VIOMMU_TYPE_ARM_SMMUV3, dev_id=devid)
    expect(errno.EOPNOTSUPP, env.ictx.ioctl, ui.IOMMU_VIOMMU_ALLOC, v)


# == lifetime ========================================================================================
def test_close_cdev_unbinds(env: Env) -> None:
    """SEMANTICS 2.1: closing the device fd detaches and destroys the DEVICE object and its auto HWPT."""
    devid, ioas = env.bound()
    hwpt = env.dev.attach(ioas)
    env.dev.close()
    expect(errno.ENOENT, env.ictx.destroy, devid)
    expect(errno.ENOENT, env.ictx.destroy, hwpt)
    env.ictx.destroy(ioas)
    env.dev = Cdev(env.k, env.edu.cdev)  # and the device can be bound again
    assert env.dev.bind(env.ictx.fd) >= 1


def test_iommufd_outlives_its_descriptor_while_bound(env: Env) -> None:
    """main.c (iommufd_ctx_get in bind): a bound device keeps the iommufd alive after its fd closes; DMA
    keeps working; closing the device releases everything and the memfd duplicates."""
    before = proc_fds()
    _, ioas = env.bound()
    env.dev.attach(ioas)
    env.dev.bus_master()
    fd = memfd(data=b"kept alive")
    iova = env.ictx.map_file(ioas, fd, 0, PAGE, iova=0x100000)
    os.close(fd)
    dst = env.ictx.map(ioas, env.va, PAGE, 0x200000)
    env.ictx.close()
    env.dev.copy(iova, dst, 10)
    assert env.buf(0, 10) == b"kept alive"
    env.dev.close()
    assert proc_fds() == before - {str(env.dev.fd), str(env.ictx.fd)}
    if is_sim(env.k):
        assert env.k.open_files() == []


def test_change_process_with_device_attached(env: Env) -> None:
    """SEMANTICS 2.2 / CPR: with only MAP_FILE mappings CHANGE_PROCESS succeeds and DMA still reaches them."""
    _, ioas = env.bound()
    env.dev.attach(ioas)
    env.dev.bus_master()
    fd = memfd(data=b"cpr")
    iova = env.ictx.map_file(ioas, fd, 0, 2 * PAGE, iova=0x100000)
    env.ictx.ioctl(ui.IOMMU_IOAS_CHANGE_PROCESS, mk(ui.iommu_ioas_change_process))
    env.dev.copy(iova, iova + PAGE, 3)
    assert os.pread(fd, 3, PAGE) == b"cpr"
    env.ictx.map(ioas, env.va, PAGE, 0x300000)
    expect(errno.EINVAL, env.ictx.ioctl, ui.IOMMU_IOAS_CHANGE_PROCESS, mk(ui.iommu_ioas_change_process))
    os.close(fd)


# == contract 1: a VFIO group on an iommufd ==========================================================
def test_group_on_iommufd_uses_compat_ioas(kernel: Any, edu: Any) -> None:
    """SEMANTICS 2.2 (VFIO_IOAS) / contract 1: SET_CONTAINER with an iommufd creates the compat IOAS, binds
    the group's devices and attaches them to it; DMA goes through it; closing releases everything."""
    ictx = Ictx(kernel)
    group = kernel.open(f"/dev/vfio/{edu.group}")
    kernel.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int(ictx.fd))
    v = mk(ui.iommu_vfio_ioas, op=ui.IOMMU_VFIO_IOAS_GET)
    ictx.ioctl(ui.IOMMU_VFIO_IOAS, v)
    ioas = int(v.ioas_id)
    mem = mmap.mmap(-1, 2 * PAGE)
    mem[:5] = b"group"
    ictx.map(ioas, addr_of(mem), 2 * PAGE, 0x100000)
    dev = Cdev.__new__(Cdev)
    dev.k = kernel
    dev.fd = kernel.ioctl(group, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(edu.address.encode()))
    assert ictx.ranges(ioas)[0][0] == (0, MSI_LO - 1)  # the device is attached to the compat IOAS
    expect(errno.EBUSY, ictx.destroy, ioas)
    dev.bus_master()
    dev.copy(0x100000, 0x101000, 5)
    assert mem[PAGE: PAGE + 5] == b"group"
    check_model(kernel)
    dev.close()
    kernel.close(group)
    ictx.destroy(ioas)
    ictx.close()
    if is_sim(kernel):
        assert kernel.open_files() == []
        assert kernel.devices[edu.address].domain is None


def test_group_unset_container_detaches(kernel: Any, edu: Any) -> None:
    """Contract 1: UNSET_CONTAINER on an iommufd-backed group detaches its devices (DMA blocked)."""
    if not is_sim(kernel):
        pytest.skip("reads the device's DMA domain from the model")
    ictx = Ictx(kernel)
    group = kernel.open(f"/dev/vfio/{edu.group}")
    kernel.ioctl(group, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int(ictx.fd))
    assert kernel.devices[edu.address].domain is not None
    check_model(kernel)
    kernel.ioctl(group, uv.VFIO_GROUP_UNSET_CONTAINER, 0)
    assert kernel.devices[edu.address].domain is None
    check_model(kernel)
    kernel.close(group)
    ictx.close()
    assert kernel.open_files() == []


def test_fixed_iova_helper_flags() -> None:
    """The FIXED flag the helpers add is the uapi's IOMMU_IOAS_MAP_FIXED_IOVA (guards the helpers)."""
    assert FIXED == 1 and RW == 6
