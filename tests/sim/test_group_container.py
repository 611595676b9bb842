"""Legacy container and group files of the simulated kernel: SEMANTICS 1.1 through the syscall surface.

Covers open rules, GET_STATUS, SET/UNSET_CONTAINER, SET_IOMMU, CHECK_EXTENSION,
GET_DEVICE_FD, the unknown-ioctl errnos, lifetimes (device files keep the
group open, groups keep the container alive) and descriptor leaks.  The
end-to-end test drives QEMU's edu device DMA through a type1 mapping.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
from typing import Any, Callable, Iterator, Optional

import pytest

import pyvfio.sim
from pyvfio.sim.container import VfioContainer
from pyvfio.sim.errno import KernelError
from pyvfio.sim.vfio_iommu_type1 import VfioGroupType, live_iommus
from pyvfio.uapi import ioctl as uioctl
from pyvfio.uapi import vfio as uv

PAGE = 4096
STATUS_VIABLE = uv.VFIO_GROUP_FLAGS_VIABLE
STATUS_SET = uv.VFIO_GROUP_FLAGS_CONTAINER_SET


def expect(err: int, fn: Callable[..., Any], *args: Any) -> None:
    with pytest.raises((OSError, KernelError)) as e:
        fn(*args)
    got: Optional[int] = getattr(e.value, "errno", None)
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got or 0)}: {e.value}"


@contextlib.contextmanager
def unprivileged(k: pyvfio.sim.Kernel) -> Iterator[None]:
    """Run the simulated caller as a non-root uid: no CAP_SYS_RAWIO, no CAP_IPC_LOCK."""
    old = k.task.uid
    k.task.uid = 1000
    try:
        yield
    finally:
        k.task.uid = old


class Machine:
    """A simulated kernel with ``n`` edu devices, each in its own group unless told otherwise."""

    def __init__(self, n: int = 1) -> None:
        self.k = pyvfio.sim.Kernel()
        self.devs = [self.k.add_device("edu") for _ in range(n)]
        self.fds: list[int] = []

    def open(self, path: str) -> int:
        fd = self.k.open(path)
        self.fds.append(fd)
        return fd

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        self.k.close(fd)

    def group(self, i: int = 0) -> int:
        return self.open(f"/dev/vfio/{self.devs[i].group}")

    def container(self) -> int:
        return self.open("/dev/vfio/vfio")

    def set_container(self, gfd: int, cfd: int) -> None:
        self.k.ioctl(gfd, uv.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(cfd))

    def device_fd(self, gfd: int, i: int = 0) -> int:
        fd = self.k.ioctl(gfd, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(self.devs[i].name.encode()))
        self.fds.append(fd)
        return fd

    def status(self, gfd: int) -> int:
        st = uv.vfio_group_status(argsz=ctypes.sizeof(uv.vfio_group_status))
        self.k.ioctl(gfd, uv.VFIO_GROUP_GET_STATUS, st)
        return int(st.flags)

    def ready(self, i: int = 0, iommu: int = uv.VFIO_TYPE1v2_IOMMU) -> tuple[int, int]:
        """Container + group attached + SET_IOMMU: the usual QEMU sequence."""
        cfd, gfd = self.container(), self.group(i)
        self.set_container(gfd, cfd)
        self.k.ioctl(cfd, uv.VFIO_SET_IOMMU, iommu)
        return cfd, gfd

    def containers(self) -> list[VfioContainer]:
        return [f for f in self.k.open_files() if isinstance(f, VfioContainer)]

    def finish(self) -> None:
        for c in self.containers():
            c.check_invariants()
        for fd in reversed(self.fds):
            self.k.close(fd)
        self.fds.clear()
        assert self.k.open_files() == []
        for g in self.k.vfio.groups.values():
            assert not g.opened and g.container is None and not g.owner_claimed, g


@pytest.fixture
def m() -> Iterator[Machine]:
    mach = Machine(2)
    yield mach
    mach.finish()


# =====================================================================================================
# 1.1.1 The container
# =====================================================================================================
def test_container_open_has_no_group_and_no_backend(m: Machine) -> None:
    """SEMANTICS 1.1.1: opening /dev/vfio/vfio needs no privilege; GET_API_VERSION is 0."""
    with unprivileged(m.k):
        cfd = m.container()
        assert m.k.ioctl(cfd, uv.VFIO_GET_API_VERSION) == uv.VFIO_API_VERSION == 0
    (c,) = m.containers()
    assert c.group_list == [] and c.iommu_driver is None


@pytest.mark.parametrize("ext,answer", [
    (uv.VFIO_TYPE1_IOMMU, 1), (uv.VFIO_TYPE1v2_IOMMU, 1), (uv.VFIO_UNMAP_ALL, 1), (uv.VFIO_UPDATE_VADDR, 0),
    (uv.VFIO_DMA_CC_IOMMU, 0), (uv.VFIO_SPAPR_TCE_IOMMU, 0), (uv.VFIO_SPAPR_TCE_v2_IOMMU, 0), (uv.VFIO_EEH, 0),
    (6, 0), (uv.VFIO_NOIOMMU_IOMMU, 0), (0, 0), (12345, 0), (-1, 0),
], ids=lambda v: str(v))
def test_check_extension_without_backend(m: Machine, ext: int, answer: int) -> None:
    """SEMANTICS 1.1.1: without a backend every registered driver is polled; unsupported -> 0, not an error."""
    cfd = m.container()
    assert m.k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, ext) == answer


@pytest.mark.parametrize("ext,answer", [
    (uv.VFIO_TYPE1_IOMMU, 1), (uv.VFIO_TYPE1v2_IOMMU, 1), (uv.VFIO_UNMAP_ALL, 1), (uv.VFIO_UPDATE_VADDR, 1),
    (uv.VFIO_DMA_CC_IOMMU, 0), (uv.VFIO_SPAPR_TCE_IOMMU, 0), (uv.VFIO_NOIOMMU_IOMMU, 0), (6, 0),
], ids=lambda v: str(v))
def test_check_extension_with_type1v2(m: Machine, ext: int, answer: int) -> None:
    """SEMANTICS 1.1.1/1.4 + NOTES: with a backend only it answers (UPDATE_VADDR 1, UNMAP_ALL 1 after TYPE1v2)."""
    cfd, _gfd = m.ready()
    assert m.k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, ext) == answer


@pytest.mark.parametrize("request_", [uv.VFIO_IOMMU_GET_INFO, uv.VFIO_IOMMU_MAP_DMA, uv.VFIO_IOMMU_UNMAP_DMA,
                                      uv.VFIO_IOMMU_DIRTY_PAGES, uv.VFIO_GROUP_GET_STATUS,
                                      uioctl._IO(ord(";"), 150), uioctl._IO(ord("x"), 1)],
                         ids=["GET_INFO", "MAP_DMA", "UNMAP_DMA", "DIRTY_PAGES", "GROUP_GET_STATUS", "IO_150", "foreign"])
def test_container_unknown_ioctl_without_backend_einval(m: Machine, request_: int) -> None:
    """SEMANTICS general conventions: a container without an IOMMU driver answers unknown ioctls EINVAL."""
    cfd = m.container()
    expect(errno.EINVAL, m.k.ioctl, cfd, request_, uv.vfio_iommu_type1_info(argsz=24))


@pytest.mark.parametrize("request_", [uv.VFIO_IOMMU_ENABLE, uv.VFIO_IOMMU_SPAPR_TCE_CREATE, uv.VFIO_EEH_PE_OP,
                                      uv.VFIO_GROUP_GET_STATUS, uioctl._IO(ord(";"), 150)],
                         ids=["SPAPR_ENABLE", "SPAPR_TCE_CREATE", "EEH_PE_OP", "GROUP_GET_STATUS", "IO_150"])
def test_container_unknown_ioctl_with_backend_enotty(m: Machine, request_: int) -> None:
    """SEMANTICS general conventions: with type1 set, ioctls type1 does not know -> ENOTTY."""
    cfd, _gfd = m.ready()
    expect(errno.ENOTTY, m.k.ioctl, cfd, request_, 0)


# =====================================================================================================
# 1.1.2 Opening a group
# =====================================================================================================
def test_group_open_twice_ebusy(m: Machine) -> None:
    """SEMANTICS 1.1.2: a group has a single opener -> EBUSY."""
    m.group()
    expect(errno.EBUSY, m.k.open, f"/dev/vfio/{m.devs[0].group}")


def test_group_open_while_cdev_bound_ebusy(m: Machine) -> None:
    """SEMANTICS 1.1.2 as the real 7.3.4 kernel does it: the exclusion starts at BIND, not at cdev open.

    An unbound open cdev does not block the group; a bound one does (EBUSY), until it closes.
    """
    cdev = m.open(m.devs[0].cdev)
    m.close(m.group())  # an open but unbound cdev does not block the group
    iommufd = m.open("/dev/iommu")
    bind = uv.vfio_device_bind_iommufd(argsz=ctypes.sizeof(uv.vfio_device_bind_iommufd), iommufd=iommufd)
    m.k.ioctl(cdev, uv.VFIO_DEVICE_BIND_IOMMUFD, bind)
    expect(errno.EBUSY, m.k.open, f"/dev/vfio/{m.devs[0].group}")
    m.close(cdev)
    m.close(iommufd)
    m.close(m.group())


def test_group_open_unknown_group_enoent(m: Machine) -> None:
    """There is no node for a group that does not exist."""
    expect(errno.ENOENT, m.k.open, "/dev/vfio/42")


def test_noiommu_group_open_needs_rawio_eperm() -> None:
    """SEMANTICS 1.1.2: a no-IOMMU group without CAP_SYS_RAWIO -> EPERM."""
    mach = Machine(1)
    mach.k.vfio.groups[mach.devs[0].group_id].type = VfioGroupType.VFIO_NO_IOMMU
    with unprivileged(mach.k):
        expect(errno.EPERM, mach.k.open, f"/dev/vfio/noiommu-{mach.devs[0].group}")
    gfd = mach.open(f"/dev/vfio/noiommu-{mach.devs[0].group}")
    assert mach.status(gfd) == STATUS_VIABLE
    mach.finish()


def test_group_unknown_ioctl_enotty(m: Machine) -> None:
    """SEMANTICS general conventions: the group fd answers unknown ioctls ENOTTY."""
    gfd = m.group()
    expect(errno.ENOTTY, m.k.ioctl, gfd, uv.VFIO_GET_API_VERSION, 0)
    expect(errno.ENOTTY, m.k.ioctl, gfd, uv.VFIO_IOMMU_MAP_DMA, uv.vfio_iommu_type1_dma_map(argsz=32))


# =====================================================================================================
# 1.1.3 VFIO_GROUP_GET_STATUS
# =====================================================================================================
def test_group_status_viable_then_container_set(m: Machine) -> None:
    """SEMANTICS 1.1.3: VIABLE alone; CONTAINER_SET|VIABLE once attached; VIABLE again after UNSET."""
    cfd, gfd = m.container(), m.group()
    assert m.status(gfd) == STATUS_VIABLE
    m.set_container(gfd, cfd)
    assert m.status(gfd) == STATUS_SET | STATUS_VIABLE
    m.k.ioctl(gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    assert m.status(gfd) == STATUS_VIABLE


@pytest.mark.parametrize("argsz", [0, 4, 7])
def test_group_status_short_argsz_einval(m: Machine, argsz: int) -> None:
    """SEMANTICS 1.1.3: argsz < 8 -> EINVAL."""
    gfd = m.group()
    st = uv.vfio_group_status(argsz=argsz, flags=0x55)
    expect(errno.EINVAL, m.k.ioctl, gfd, uv.VFIO_GROUP_GET_STATUS, st)
    assert st.flags == 0x55


def test_group_status_short_buffer_efault(m: Machine) -> None:
    """The kernel copies 8 bytes in; a 4-byte argument faults."""
    gfd = m.group()
    expect(errno.EFAULT, m.k.ioctl, gfd, uv.VFIO_GROUP_GET_STATUS, ctypes.c_uint32(8))


def test_group_status_not_viable(m: Machine) -> None:
    """SEMANTICS 1.1.3: a group whose DMA a kernel driver owns is not VIABLE (and cannot join: EPERM)."""
    m.k.vfio.groups[m.devs[0].group_id].viable = False
    cfd, gfd = m.container(), m.group()
    assert m.status(gfd) == 0
    expect(errno.EPERM, m.set_container, gfd, cfd)
    assert m.status(gfd) == 0
    m.k.vfio.groups[m.devs[0].group_id].viable = True


# =====================================================================================================
# 1.1.4 VFIO_GROUP_SET_CONTAINER
# =====================================================================================================
def test_set_container_closed_fd_ebadf(m: Machine) -> None:
    """SEMANTICS 1.1.4: a descriptor that is not open -> EBADF."""
    gfd = m.group()
    expect(errno.EBADF, m.set_container, gfd, 9999)
    expect(errno.EBADF, m.set_container, gfd, -1)


def test_set_container_foreign_fd_ebadfd(m: Machine) -> None:
    """SEMANTICS 1.1.4: an open descriptor that is neither a container nor an iommufd -> EBADFD."""
    gfd, g2 = m.group(0), m.group(1)
    efd = os.eventfd(0)
    try:
        expect(errno.EBADFD, m.set_container, gfd, efd)
    finally:
        os.close(efd)
    expect(errno.EBADFD, m.set_container, gfd, g2)
    assert m.status(gfd) == STATUS_VIABLE


def test_set_container_by_value_efault(m: Machine) -> None:
    """SET_CONTAINER reads an int through a pointer: passing the fd by value cannot be read (EFAULT)."""
    cfd, gfd = m.container(), m.group()
    expect(errno.EFAULT, m.k.ioctl, gfd, uv.VFIO_GROUP_SET_CONTAINER, cfd)


def test_set_container_twice_einval(m: Machine) -> None:
    """SEMANTICS 1.1.4: group already has a container -> EINVAL (checked before the fd's type)."""
    cfd, gfd = m.container(), m.group()
    c2 = m.container()
    m.set_container(gfd, cfd)
    expect(errno.EINVAL, m.set_container, gfd, cfd)
    expect(errno.EINVAL, m.set_container, gfd, c2)
    efd = os.eventfd(0)
    try:
        expect(errno.EINVAL, m.set_container, gfd, efd)
    finally:
        os.close(efd)


def test_two_groups_share_a_container(m: Machine) -> None:
    """A container accepts several groups; one added after SET_IOMMU attaches to type1 at once."""
    cfd, g1 = m.ready(0)
    g2 = m.group(1)
    m.set_container(g2, cfd)
    (c,) = m.containers()
    assert c.iommu is not None and len(c.iommu.groups) == 2
    assert m.devs[1].domain is c.iommu
    m.k.ioctl(g1, uv.VFIO_GROUP_UNSET_CONTAINER)
    assert c.iommu is not None and m.devs[0].domain is None
    m.k.ioctl(g2, uv.VFIO_GROUP_UNSET_CONTAINER)
    assert c.iommu is None, "the last group took the backend with it"


def test_mixing_noiommu_and_iommu_groups_eperm() -> None:
    """SEMANTICS 1.1.4: a container holds either no-IOMMU groups or IOMMU groups, never both (EPERM)."""
    mach = Machine(2)
    mach.k.vfio.groups[mach.devs[1].group_id].type = VfioGroupType.VFIO_NO_IOMMU
    cfd, g1 = mach.container(), mach.group(0)
    g2 = mach.open(f"/dev/vfio/noiommu-{mach.devs[1].group}")
    mach.set_container(g1, cfd)
    expect(errno.EPERM, mach.set_container, g2, cfd)
    c2 = mach.container()
    mach.set_container(g2, c2)
    mach.k.ioctl(g1, uv.VFIO_GROUP_UNSET_CONTAINER)
    expect(errno.EPERM, mach.set_container, g1, c2)
    assert mach.status(g1) == STATUS_VIABLE
    mach.finish()


def test_noiommu_container_backend_and_device_needs_rawio() -> None:
    """SEMANTICS 1.1.1/1.1.5: a no-IOMMU container polls only the no-IOMMU driver; its devices need CAP_SYS_RAWIO."""
    mach = Machine(1)
    mach.k.vfio.groups[mach.devs[0].group_id].type = VfioGroupType.VFIO_NO_IOMMU
    cfd = mach.container()
    gfd = mach.open(f"/dev/vfio/noiommu-{mach.devs[0].group}")
    assert mach.k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_NOIOMMU_IOMMU) == 1, "noiommu mode is on"
    with unprivileged(mach.k):
        expect(errno.EPERM, mach.set_container, gfd, cfd)
    mach.set_container(gfd, cfd)
    assert mach.k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_TYPE1v2_IOMMU) == 0
    expect(errno.ENODEV, mach.k.ioctl, cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    with unprivileged(mach.k):
        expect(errno.EPERM, mach.k.ioctl, cfd, uv.VFIO_SET_IOMMU, uv.VFIO_NOIOMMU_IOMMU)
    mach.k.ioctl(cfd, uv.VFIO_SET_IOMMU, uv.VFIO_NOIOMMU_IOMMU)
    expect(errno.ENOTTY, mach.k.ioctl, cfd, uv.VFIO_IOMMU_GET_INFO, uv.vfio_iommu_type1_info(argsz=24))
    with unprivileged(mach.k):
        expect(errno.EPERM, mach.device_fd, gfd)
    dfd = mach.device_fd(gfd)
    mach.close(dfd)
    mach.finish()


def test_set_container_with_iommufd_compat() -> None:
    """SEMANTICS 1.1.4: an iommufd descriptor gives the group the compat IOAS; UNSET and close detach it."""
    pytest.importorskip("pyvfio.sim.iommufd.main")
    mach = Machine(1)
    ifd, gfd = mach.open("/dev/iommu"), mach.group()
    mach.set_container(gfd, ifd)
    assert mach.status(gfd) == STATUS_SET | STATUS_VIABLE
    assert mach.devs[0].domain is not None
    expect(errno.EINVAL, mach.set_container, gfd, ifd)
    mach.k.ioctl(gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    assert mach.status(gfd) == STATUS_VIABLE
    mach.set_container(gfd, ifd)
    mach.close(gfd)
    assert mach.devs[0].domain is None
    mach.finish()


def test_iommufd_compat_unset_with_open_device() -> None:
    """group.c: UNSET_CONTAINER of an iommufd has no EBUSY check; the open device stays bound (and owns the
    group's DMA, so a container cannot take it: EPERM) until it closes."""
    pytest.importorskip("pyvfio.sim.iommufd.main")
    mach = Machine(1)
    ifd, gfd, cfd = mach.open("/dev/iommu"), mach.group(), mach.container()
    mach.set_container(gfd, ifd)
    dfd = mach.device_fd(gfd)
    mach.k.ioctl(gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    assert mach.devs[0].domain is not None
    assert mach.status(gfd) == 0
    expect(errno.EPERM, mach.set_container, gfd, cfd)
    mach.close(dfd)
    assert mach.devs[0].domain is None
    mach.set_container(gfd, cfd)
    mach.finish()


# =====================================================================================================
# 1.1.5 VFIO_SET_IOMMU
# =====================================================================================================
def test_set_iommu_without_group_einval(m: Machine) -> None:
    """SEMANTICS 1.1.5: a container without a group cannot pick a backend -> EINVAL."""
    cfd = m.container()
    expect(errno.EINVAL, m.k.ioctl, cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)


def test_set_iommu_twice_einval(m: Machine) -> None:
    """SEMANTICS 1.1.5: a backend is already set -> EINVAL, even for the same type."""
    cfd, _gfd = m.ready()
    expect(errno.EINVAL, m.k.ioctl, cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    expect(errno.EINVAL, m.k.ioctl, cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1_IOMMU)


@pytest.mark.parametrize("iommu_type,err", [
    (uv.VFIO_SPAPR_TCE_IOMMU, errno.ENODEV), (uv.VFIO_SPAPR_TCE_v2_IOMMU, errno.ENODEV),
    (uv.VFIO_NOIOMMU_IOMMU, errno.ENODEV), (6, errno.ENODEV), (0, errno.ENODEV), (99, errno.ENODEV),
    (uv.VFIO_UPDATE_VADDR, errno.ENODEV), (uv.VFIO_DMA_CC_IOMMU, errno.ENODEV),
    (uv.VFIO_UNMAP_ALL, errno.EINVAL),
], ids=["spapr", "spapr_v2", "noiommu", "old_nesting", "zero", "99", "update_vaddr", "dma_cc", "unmap_all"])
def test_set_iommu_unsupported_type(m: Machine, iommu_type: int, err: int) -> None:
    """SEMANTICS 1.1.5: no backend claims the type -> ENODEV; UNMAP_ALL is claimed by type1 but cannot open -> EINVAL."""
    cfd, gfd = m.container(), m.group()
    m.set_container(gfd, cfd)
    expect(err, m.k.ioctl, cfd, uv.VFIO_SET_IOMMU, iommu_type)
    (c,) = m.containers()
    assert c.iommu_driver is None
    m.k.ioctl(cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)


def test_container_deprivileged_after_last_group_and_reusable(m: Machine) -> None:
    """SEMANTICS 1.1.5: no unset; removing the last group returns the container to the unset state."""
    cfd, gfd = m.ready(iommu=uv.VFIO_TYPE1_IOMMU)
    m.k.ioctl(gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    expect(errno.EINVAL, m.k.ioctl, cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    expect(errno.EINVAL, m.k.ioctl, cfd, uv.VFIO_IOMMU_GET_INFO, uv.vfio_iommu_type1_info(argsz=24))
    m.set_container(gfd, cfd)
    m.k.ioctl(cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    (c,) = m.containers()
    assert c.iommu is not None and c.iommu.v2


# =====================================================================================================
# 1.1.6 VFIO_GROUP_GET_DEVICE_FD
# =====================================================================================================
def test_get_device_fd_unknown_name_enodev(m: Machine) -> None:
    """SEMANTICS 1.1.6: a name not in the group -> ENODEV (also another group's device)."""
    _cfd, gfd = m.ready()
    expect(errno.ENODEV, m.k.ioctl, gfd, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"0000:99:00.0"))
    expect(errno.ENODEV, m.k.ioctl, gfd, uv.VFIO_GROUP_GET_DEVICE_FD,
           ctypes.create_string_buffer(m.devs[1].name.encode()))
    expect(errno.ENODEV, m.k.ioctl, gfd, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b""))


def test_get_device_fd_without_container_einval(m: Machine) -> None:
    """SEMANTICS 1.1.6: no container -> EINVAL."""
    gfd = m.group()
    expect(errno.EINVAL, m.device_fd, gfd)


def test_get_device_fd_container_without_backend_einval(m: Machine) -> None:
    """SEMANTICS 1.1.6: a container without an IOMMU driver -> EINVAL."""
    cfd, gfd = m.container(), m.group()
    m.set_container(gfd, cfd)
    expect(errno.EINVAL, m.device_fd, gfd)
    (c,) = m.containers()
    c.check_invariants()


def test_get_device_fd_by_value_efault(m: Machine) -> None:
    """GET_DEVICE_FD reads a string through a pointer: an integer argument faults."""
    _cfd, gfd = m.ready()
    expect(errno.EFAULT, m.k.ioctl, gfd, uv.VFIO_GROUP_GET_DEVICE_FD, 0)


def test_get_device_fd_success_and_twice(m: Machine) -> None:
    """SEMANTICS 1.1.6: success returns a new CLOEXEC descriptor; the group path may open a device twice."""
    _cfd, gfd = m.ready()
    d1 = m.device_fd(gfd)
    d2 = m.device_fd(gfd)
    assert d1 != d2
    assert os.get_inheritable(d1) is False
    assert m.devs[0].open_count == 2
    m.close(d1)
    m.close(d2)
    assert m.devs[0].open_count == 0


# =====================================================================================================
# 1.1.7 VFIO_GROUP_UNSET_CONTAINER
# =====================================================================================================
def test_unset_container_without_container_einval(m: Machine) -> None:
    """SEMANTICS 1.1.7: no container -> EINVAL."""
    gfd = m.group()
    expect(errno.EINVAL, m.k.ioctl, gfd, uv.VFIO_GROUP_UNSET_CONTAINER)


def test_unset_container_with_open_device_ebusy(m: Machine) -> None:
    """SEMANTICS 1.1.7: device fds still open (container_users != 1) -> EBUSY; fine once closed."""
    _cfd, gfd = m.ready()
    dfd = m.device_fd(gfd)
    expect(errno.EBUSY, m.k.ioctl, gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    assert m.status(gfd) == STATUS_SET | STATUS_VIABLE
    m.close(dfd)
    m.k.ioctl(gfd, uv.VFIO_GROUP_UNSET_CONTAINER)
    expect(errno.EINVAL, m.device_fd, gfd)


# =====================================================================================================
# 1.1.8 Lifetimes
# =====================================================================================================
def map_one(m: Machine, cfd: int, mem: mmap.mmap, iova: int = 0x100000) -> None:
    va = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    m.k.ioctl(cfd, uv.VFIO_IOMMU_MAP_DMA, uv.vfio_iommu_type1_dma_map(
        argsz=32, flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE, vaddr=va, iova=iova, size=PAGE))


def test_closing_group_detaches_container_and_drops_mappings(m: Machine) -> None:
    """SEMANTICS 1.1.8: closing the group fd detaches it; the last detach releases type1 and every mapping."""
    mem = mmap.mmap(-1, PAGE)
    cfd, gfd = m.ready()
    map_one(m, cfd, mem)
    (c,) = m.containers()
    iommu = c.iommu
    assert iommu is not None and len(iommu.dma_list) == 1
    m.close(gfd)
    assert len(iommu.dma_list) == 0 and iommu.released
    assert c.iommu_driver is None and c.group_list == []
    assert m.k.ioctl(cfd, uv.VFIO_CHECK_EXTENSION, uv.VFIO_UPDATE_VADDR) == 0
    expect(errno.EINVAL, map_one, m, cfd, mem)
    gfd = m.group()
    assert m.status(gfd) == STATUS_VIABLE
    mem.close()


def test_device_fd_keeps_group_open(m: Machine) -> None:
    """A device fd holds the group file: closing the group fd changes nothing until the device closes."""
    mem = mmap.mmap(-1, PAGE)
    cfd, gfd = m.ready()
    map_one(m, cfd, mem)
    dfd = m.device_fd(gfd)
    m.close(gfd)
    expect(errno.EBUSY, m.k.open, f"/dev/vfio/{m.devs[0].group}")
    (c,) = m.containers()
    assert c.iommu is not None and len(c.iommu.dma_list) == 1
    m.devs[0].dma_write(0x100000, b"kept")
    assert mem[:4] == b"kept"
    m.close(dfd)
    assert c.iommu is None and m.devs[0].domain is None
    m.close(m.group())
    mem.close()


def test_container_outlives_its_fd_while_groups_hold_it(m: Machine) -> None:
    """The container is refcounted: its fd can close first; mappings live until the last group leaves."""
    mem = mmap.mmap(-1, PAGE)
    cfd, gfd = m.ready()
    map_one(m, cfd, mem)
    (c,) = m.containers()
    iommu = c.iommu
    m.close(cfd)
    assert m.containers() == [] and iommu is not None and len(iommu.dma_list) == 1
    assert m.status(gfd) == STATUS_SET | STATUS_VIABLE
    dfd = m.device_fd(gfd)
    m.close(dfd)
    m.close(gfd)
    assert len(iommu.dma_list) == 0 and iommu.released
    mem.close()


def test_failed_calls_leak_no_descriptors_or_objects(m: Machine) -> None:
    """After a burst of failing calls, open files and model objects are back to baseline."""
    base_fds = len(os.listdir("/proc/self/fd"))
    cfd, gfd = m.container(), m.group()
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (m.device_fd, (gfd,)), (m.set_container, (gfd, 9999)),
        (m.k.ioctl, (cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)),
        (m.k.open, (f"/dev/vfio/{m.devs[0].group}",)), (m.k.open, ("/dev/vfio/77",))]
    for fn, args in calls:
        with pytest.raises(OSError):
            fn(*args)
    m.set_container(gfd, cfd)
    for bad in (99, uv.VFIO_SPAPR_TCE_IOMMU, uv.VFIO_UNMAP_ALL):
        with pytest.raises(OSError):
            m.k.ioctl(cfd, uv.VFIO_SET_IOMMU, bad)
    m.k.ioctl(cfd, uv.VFIO_SET_IOMMU, uv.VFIO_TYPE1v2_IOMMU)
    with pytest.raises(OSError):
        m.k.ioctl(gfd, uv.VFIO_GROUP_GET_DEVICE_FD, ctypes.create_string_buffer(b"nope"))
    assert len(m.k.open_files()) == 2
    m.close(gfd)
    m.close(cfd)
    assert m.k.open_files() == []
    assert len(os.listdir("/proc/self/fd")) == base_fds
    assert all(i.released or i.groups for i in live_iommus() if i.core is m.k.vfio)


def test_open_close_cycles_return_to_baseline(m: Machine) -> None:
    """Repeated full setup/teardown leaves nothing behind."""
    for _ in range(5):
        cfd, gfd = m.ready()
        dfd = m.device_fd(gfd)
        for fd in (dfd, gfd, cfd):
            m.close(fd)
        assert m.k.open_files() == []
        g = m.k.vfio.groups[m.devs[0].group_id]
        assert not g.opened and g.container is None and not g.owner_claimed and not g.device_files


# =====================================================================================================
# End to end: edu DMA RAM -> device -> RAM through a type1 mapping
# =====================================================================================================
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_CNT, EDU_DMA_CMD = 0x80, 0x88, 0x90, 0x98
EDU_DMA_RUN, EDU_DMA_TO_RAM = 0x1, 0x2  # QEMU hw/misc/edu.c: bit 1 clear = RAM -> device, set = device -> RAM
EDU_BUF = 0x40000


def region_offset(k: pyvfio.sim.Kernel, dfd: int, index: int) -> int:
    info = uv.vfio_region_info(argsz=ctypes.sizeof(uv.vfio_region_info), index=index)
    k.ioctl(dfd, uv.VFIO_DEVICE_GET_REGION_INFO, info)
    return int(info.offset)


def test_edu_dma_round_trip_through_type1(m: Machine) -> None:
    """Map a buffer, have edu DMA it RAM -> device buffer -> another RAM page, compare; also while vaddr invalid."""
    mem = mmap.mmap(-1, 4 * PAGE)
    va = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    cfd, gfd = m.ready()
    m.k.ioctl(cfd, uv.VFIO_IOMMU_MAP_DMA, uv.vfio_iommu_type1_dma_map(
        argsz=32, flags=uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE, vaddr=va, iova=0x200000,
        size=4 * PAGE))
    dfd = m.device_fd(gfd)
    cfg = region_offset(m.k, dfd, uv.VFIO_PCI_CONFIG_REGION_INDEX)
    bar0 = region_offset(m.k, dfd, uv.VFIO_PCI_BAR0_REGION_INDEX)
    cmd = int.from_bytes(m.k.pread(dfd, 2, cfg + 4), "little")
    m.k.pwrite(dfd, (cmd | 0x4).to_bytes(2, "little"), cfg + 4)  # PCI_COMMAND_MASTER

    def edu_dma(src: int, dst: int, count: int, cmd: int) -> None:
        for reg, val in ((EDU_DMA_SRC, src), (EDU_DMA_DST, dst), (EDU_DMA_CNT, count), (EDU_DMA_CMD, cmd)):
            m.k.pwrite(dfd, val.to_bytes(8, "little"), bar0 + reg)
        assert int.from_bytes(m.k.pread(dfd, 8, bar0 + EDU_DMA_CMD), "little") & EDU_DMA_RUN == 0

    payload = os.urandom(3000)  # < 4096: QEMU 7.2's edu aborts on a full 4 KiB transfer
    mem[:len(payload)] = payload
    edu_dma(0x200000, EDU_BUF, len(payload), EDU_DMA_RUN)  # RAM -> device
    edu_dma(EDU_BUF, 0x200000 + 2 * PAGE, len(payload), EDU_DMA_RUN | EDU_DMA_TO_RAM)  # device -> RAM
    assert mem[2 * PAGE:2 * PAGE + len(payload)] == payload

    # CPR window: invalidate the vaddr; device DMA still reaches the same pages.
    m.k.ioctl(cfd, uv.VFIO_IOMMU_UNMAP_DMA, uv.vfio_iommu_type1_dma_unmap(
        argsz=24, flags=uv.VFIO_DMA_UNMAP_FLAG_VADDR, iova=0x200000, size=4 * PAGE))
    mem[PAGE:PAGE + 16] = bytes(16)
    edu_dma(EDU_BUF, 0x200000 + PAGE, 16, EDU_DMA_RUN | EDU_DMA_TO_RAM)
    assert mem[PAGE:PAGE + 16] == payload[:16]
    m.k.ioctl(cfd, uv.VFIO_IOMMU_MAP_DMA, uv.vfio_iommu_type1_dma_map(
        argsz=32, flags=uv.VFIO_DMA_MAP_FLAG_VADDR, vaddr=va, iova=0x200000, size=4 * PAGE))

    # Unmapped IOVA: the device's DMA faults and memory is untouched.
    before = bytes(mem[3 * PAGE:3 * PAGE + 16])
    m.k.pwrite(dfd, (0x900000).to_bytes(8, "little"), bar0 + EDU_DMA_DST)
    edu_dma(EDU_BUF, 0x900000, 16, EDU_DMA_RUN | EDU_DMA_TO_RAM)
    assert bytes(mem[3 * PAGE:3 * PAGE + 16]) == before
    m.close(dfd)
    mem.close()
