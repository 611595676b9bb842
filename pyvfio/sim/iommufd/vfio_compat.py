"""The VFIO container emulation inside iommufd (``drivers/iommu/iommufd/vfio_compat.c``).

Two things live here.  ``IOMMU_VFIO_IOAS`` gets, sets or clears the
*compatibility IOAS*: the IOAS that VFIO groups attached to this iommufd
(``VFIO_GROUP_SET_CONTAINER`` with an iommufd descriptor) use, created on
demand when the first group joins.  And the legacy container ioctls --
``VFIO_GET_API_VERSION``, ``VFIO_CHECK_EXTENSION``, ``VFIO_SET_IOMMU``,
``VFIO_IOMMU_GET_INFO``, ``VFIO_IOMMU_MAP_DMA``, ``VFIO_IOMMU_UNMAP_DMA`` --
which the kernel answers on any iommufd descriptor by acting on that IOAS.
They differ from real type1 where iommufd does: ``VFIO_UPDATE_VADDR`` is not
offered, and an unmap that finds nothing is ENOENT.
"""

from __future__ import annotations

import ctypes
import struct as _struct

from ...uapi import iommufd as ui
from ...uapi import vfio as uv
from ...uapi.struct import offsetofend
from ..errno import EINVAL, ENODEV, ENOTTY, EOPNOTSUPP, KernelError
from ..file import Task, UserArg
from .io_pagetable import IOMMU_READ, IOMMU_WRITE, PAGE_SIZE, ULONG_MAX, PagesSlice, iopt_alloc_user_pages
from .ioas import Ioas, get_ioas, iommufd_ioas_alloc
from .main import IommufdCtx, Ucmd, copy_from_user, copy_to_user

_DOMAIN_PGSIZE_BITMAP = 0x40201000  # 4 KiB | 2 MiB | 1 GiB, as intel-iommu


def get_compat_ioas(ictx: IommufdCtx) -> Ioas:
    if ictx.vfio_ioas is None or not ictx.vfio_ioas.live:
        raise KernelError(ENODEV, "no compatibility IOAS is set (IOMMU_VFIO_IOAS)")
    return ictx.vfio_ioas


def iommufd_vfio_compat_ioas_create(ictx: IommufdCtx) -> Ioas:
    """The compatibility IOAS, created (and made the compat one) if none is set."""
    if ictx.vfio_ioas is not None and ictx.vfio_ioas.live:
        return ictx.vfio_ioas
    ioas = iommufd_ioas_alloc(ictx)
    ictx.vfio_ioas = ioas
    return ioas


def iommufd_vfio_ioas(ucmd: Ucmd) -> int:
    """``IOMMU_VFIO_IOAS``: GET (ENODEV when none), SET (ENOENT for a bad id) or CLEAR the compat IOAS."""
    cmd = ucmd.cmd
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    if cmd.op == ui.IOMMU_VFIO_IOAS_GET:
        cmd.ioas_id = get_compat_ioas(ucmd.ictx).id
        ucmd.respond()
        return 0
    if cmd.op == ui.IOMMU_VFIO_IOAS_SET:
        ucmd.ictx.vfio_ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
        return 0
    if cmd.op == ui.IOMMU_VFIO_IOAS_CLEAR:
        ucmd.ictx.vfio_ioas = None
        return 0
    raise KernelError(EOPNOTSUPP, f"unknown op {cmd.op}")


# -- the legacy container ioctls ---------------------------------------------------------------------
def _check_extension(ictx: IommufdCtx, ext: int) -> int:
    if ext in (uv.VFIO_TYPE1_IOMMU, uv.VFIO_TYPE1v2_IOMMU, uv.VFIO_UNMAP_ALL):
        return 1
    if ext == uv.VFIO_DMA_CC_IOMMU:
        get_compat_ioas(ictx)
        return 1  # every simulated domain enforces cache coherency
    return 0  # VFIO_TYPE1_NESTING_IOMMU, VFIO_UPDATE_VADDR and the rest


def _set_iommu(ictx: IommufdCtx, kind: int) -> int:
    if kind not in (uv.VFIO_TYPE1_IOMMU, uv.VFIO_TYPE1v2_IOMMU):
        raise KernelError(EINVAL, f"IOMMU type {kind} is not TYPE1 or TYPE1v2")
    ioas = get_compat_ioas(ictx)
    if kind == uv.VFIO_TYPE1_IOMMU:  # v1 may unmap inside a mapping: no huge IOMMU pages then
        ioas.iopt.disable_large_pages_()
    return 0


def _get_info(ictx: IommufdCtx, task: Task, arg: UserArg) -> int:
    minsz = offsetofend(uv.vfio_iommu_type1_info, "iova_pgsizes")
    info = uv.vfio_iommu_type1_info.from_buffer_copy(copy_from_user(task, arg, 0, minsz)
                                                     + bytes(ctypes.sizeof(uv.vfio_iommu_type1_info) - minsz))
    if info.argsz < minsz:
        raise KernelError(EINVAL, f"argsz {info.argsz} < {minsz}")
    copy_len = min(info.argsz, ctypes.sizeof(info))
    ioas = get_compat_ioas(ictx)
    iopt = ioas.iopt
    pgsizes = ULONG_MAX
    for _ in iopt.domains:
        pgsizes &= _DOMAIN_PGSIZE_BITMAP
    if pgsizes & (PAGE_SIZE - 1):
        pgsizes = (pgsizes & ~(PAGE_SIZE - 1)) | PAGE_SIZE
    pgsizes = max(pgsizes, iopt.iova_alignment)
    info.flags = uv.VFIO_IOMMU_INFO_PGSIZES | uv.VFIO_IOMMU_INFO_CAPS
    info.iova_pgsizes = pgsizes
    info.cap_offset = 0
    base = ctypes.sizeof(info)
    avail = _struct.pack("<HHII", uv.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, 0, 0xFFFFFFFF)
    ranges = iopt.iova_ranges()
    iova_cap = bytearray(_struct.pack("<HHIII", uv.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0, len(ranges), 0))
    for s, e in ranges:
        iova_cap += _struct.pack("<QQ", s, e)
    total = base + len(avail) + len(iova_cap)
    if info.argsz >= total:
        avail = avail[:4] + _struct.pack("<I", base + len(avail)) + avail[8:]
        copy_to_user(task, arg, base, avail + bytes(iova_cap))
        info.cap_offset = base
    info.argsz = total
    copy_to_user(task, arg, 0, bytes(info)[:copy_len])
    return 0


def _map_dma(ictx: IommufdCtx, task: Task, arg: UserArg) -> int:
    minsz = offsetofend(uv.vfio_iommu_type1_dma_map, "size")
    argsz, flags, vaddr, iova, size = _struct.unpack("<IIQQQ", copy_from_user(task, arg, 0, minsz))
    if argsz < minsz or flags & ~(uv.VFIO_DMA_MAP_FLAG_READ | uv.VFIO_DMA_MAP_FLAG_WRITE):
        raise KernelError(EINVAL, f"argsz {argsz} < {minsz} or unsupported flags {flags:#x}")
    prot = (IOMMU_READ if flags & uv.VFIO_DMA_MAP_FLAG_READ else 0) | \
        (IOMMU_WRITE if flags & uv.VFIO_DMA_MAP_FLAG_WRITE else 0)
    ioas = get_compat_ioas(ictx)
    pages, start_byte = iopt_alloc_user_pages(vaddr, size, bool(prot & IOMMU_WRITE), mm=task.mm, uid=task.uid,
                                              account_mode=1)
    try:
        ioas.iopt.map_pages([PagesSlice(pages, start_byte, size)], size, iova, prot, 0)
    except KernelError:
        pages.discard()
        raise
    return 0


def _unmap_dma(ictx: IommufdCtx, task: Task, arg: UserArg) -> int:
    minsz = offsetofend(uv.vfio_iommu_type1_dma_unmap, "size")
    argsz, flags, iova, size = _struct.unpack("<IIQQ", copy_from_user(task, arg, 0, minsz))
    if argsz < minsz or flags & ~uv.VFIO_DMA_UNMAP_FLAG_ALL:
        raise KernelError(EINVAL, f"argsz {argsz} < {minsz} or unsupported flags {flags:#x}")
    ioas = get_compat_ioas(ictx)
    rc = 0
    if flags & uv.VFIO_DMA_UNMAP_FLAG_ALL:
        if iova or size:
            raise KernelError(EINVAL, "VFIO_DMA_UNMAP_FLAG_ALL needs iova and size 0")
        unmapped = ioas.iopt.unmap_all()
    else:
        if ioas.iopt.disable_large_pages:
            ioas.iopt.cut_iova([(iova + size - 1) & ULONG_MAX] + ([iova - 1] if iova else []))
        rc, unmapped = ioas.iopt.unmap_iova(iova, size)
    copy_to_user(task, arg, 0, _struct.pack("<IIQQ", argsz, flags, iova, unmapped))
    if rc:
        raise KernelError(rc, f"[{iova:#x}, +{size:#x}) is not made of whole mappings, or nothing is mapped")
    return 0


def iommufd_vfio_ioctl(ictx: IommufdCtx, task: Task, request: int, arg: UserArg) -> int:
    """``iommufd_vfio_ioctl``: the type1 container ioctls an iommufd answers; anything else ENOTTY."""
    if request == uv.VFIO_GET_API_VERSION:
        return uv.VFIO_API_VERSION
    if request == uv.VFIO_SET_IOMMU:
        return _set_iommu(ictx, arg.value)
    if request == uv.VFIO_CHECK_EXTENSION:
        return _check_extension(ictx, arg.value)
    if request == uv.VFIO_IOMMU_GET_INFO:
        return _get_info(ictx, task, arg)
    if request == uv.VFIO_IOMMU_MAP_DMA:
        return _map_dma(ictx, task, arg)
    if request == uv.VFIO_IOMMU_UNMAP_DMA:
        return _unmap_dma(ictx, task, arg)
    raise KernelError(ENOTTY, f"{request:#x} is not an iommufd command")


__all__ = ["get_compat_ioas", "iommufd_vfio_compat_ioas_create", "iommufd_vfio_ioas", "iommufd_vfio_ioctl"]
