"""IO address spaces and their commands (``drivers/iommu/iommufd/ioas.c``).

An IOAS is the software IOVA -> memory map a program fills with
``IOMMU_IOAS_MAP`` (its own virtual addresses), ``IOMMU_IOAS_MAP_FILE`` (a
memfd range) and ``IOMMU_IOAS_COPY`` (pages another IOAS already maps), and
empties with ``IOMMU_IOAS_UNMAP``.  Hardware page tables attached to it
mirror it, so a device attached through one DMAs into exactly these ranges.
The rules worth knowing, all modelled here:

* the kernel picks the IOVA unless ``IOMMU_IOAS_MAP_FIXED_IOVA`` is set;
  a fixed IOVA may not hit a reserved range (EINVAL) or a mapping (EEXIST);
* an unmap range must contain whole mappings -- one that cuts a mapping
  fails with ENOENT (after removing the whole ones before it), and so does
  one that finds nothing; ``iova 0, length U64_MAX`` empties everything;
* ``IOMMU_IOAS_CHANGE_PROCESS`` moves the accounting of every mapping to the
  caller, which only works once all mappings are memfd-backed.
"""

from __future__ import annotations

import struct as _struct
from typing import TYPE_CHECKING

from ...uapi import iommufd as ui
from ..errno import EBUSY, EINVAL, EMSGSIZE, ENOENT, EOPNOTSUPP, EOVERFLOW, EPERM, KernelError
from .io_pagetable import (
    IOMMU_READ, IOMMU_WRITE, IOPT_ADDRESS_USER, IOPT_ALLOC_IOVA, IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER,
    ULONG_MAX, IoPagetable, IoptPages, PagesSlice, iopt_alloc_file_pages, iopt_alloc_user_pages,
)
from .main import IommufdCtx, IommufdObject, Ucmd

if TYPE_CHECKING:
    from .hw_pagetable import HwptPaging

_MAP_FLAGS = ui.IOMMU_IOAS_MAP_FIXED_IOVA | ui.IOMMU_IOAS_MAP_WRITEABLE | ui.IOMMU_IOAS_MAP_READABLE
_RW = ui.IOMMU_IOAS_MAP_WRITEABLE | ui.IOMMU_IOAS_MAP_READABLE
IOPT_PAGES_ACCOUNT_NONE = 2  # CAP_IPC_LOCK: pinned memory is not charged


class Ioas(IommufdObject):
    """``struct iommufd_ioas``: an :class:`IoPagetable` plus the paging page tables built on it."""

    kind = "IOAS"

    def __init__(self, ictx: IommufdCtx) -> None:
        super().__init__(ictx)
        self.iopt = IoPagetable()
        self.hwpt_list: list["HwptPaging"] = []

    def destroy(self) -> None:
        """``iommufd_ioas_destroy``: unmap everything (dropping the memory it held)."""
        self.iopt.unmap_all()
        self.iopt.allowed = []


def iommufd_ioas_alloc(ictx: IommufdCtx) -> Ioas:
    return ictx.object_alloc(Ioas(ictx))


def get_ioas(ictx: IommufdCtx, ioas_id: int) -> Ioas:
    return ictx.get_object(ioas_id, Ioas)


def conv_iommu_prot(map_flags: int) -> int:
    prot = 0
    if map_flags & ui.IOMMU_IOAS_MAP_WRITEABLE:
        prot |= IOMMU_WRITE
    if map_flags & ui.IOMMU_IOAS_MAP_READABLE:
        prot |= IOMMU_READ
    return prot


def _pages_account_mode(ucmd: Ucmd) -> int:
    """Pinned pages are charged per user or per process (RLIMIT_MODE), or not at all with CAP_IPC_LOCK."""
    if ucmd.task.capable("CAP_IPC_LOCK"):
        return IOPT_PAGES_ACCOUNT_NONE
    return ucmd.ictx.account_mode


# -- IOMMU_IOAS_ALLOC ------------------------------------------------------------------------------
def iommufd_ioas_alloc_ioctl(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_ALLOC``: a new, empty address space; ``flags`` must be 0 (EOPNOTSUPP)."""
    cmd = ucmd.cmd
    if cmd.flags:
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags:#x}")
    ioas = iommufd_ioas_alloc(ucmd.ictx)
    cmd.out_ioas_id = ioas.id
    try:
        ucmd.respond()
    except KernelError:
        ucmd.ictx.object_abort(ioas)
        raise
    return 0


# -- IOMMU_IOAS_IOVA_RANGES ------------------------------------------------------------------------
def iommufd_ioas_iova_ranges(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_IOVA_RANGES``: the usable IOVA ranges, with the EMSGSIZE retry protocol.

    Up to ``num_iovas`` ranges are written to the caller's ``allowed_iovas``
    array; ``num_iovas`` comes back as the total.  If that total is larger
    than the room given, the struct is still written and the call fails with
    EMSGSIZE so the caller can grow the array and ask again.
    """
    cmd = ucmd.cmd
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
    max_iovas = int(cmd.num_iovas)
    ranges = ioas.iopt.iova_ranges()
    for i, (start, last) in enumerate(ranges[:max_iovas]):
        ucmd.task.mm.write(int(cmd.allowed_iovas) + 16 * i, _struct.pack("<QQ", start, last))
    cmd.num_iovas = len(ranges)
    cmd.out_iova_alignment = ioas.iopt.iova_alignment
    ucmd.respond()
    if len(ranges) > max_iovas:
        raise KernelError(EMSGSIZE, f"{len(ranges)} ranges do not fit in {max_iovas}: num_iovas says how many")
    return 0


# -- IOMMU_IOAS_ALLOW_IOVAS ------------------------------------------------------------------------
def iommufd_ioas_allow_iovas(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_ALLOW_IOVAS``: replace the allowed ranges atomically.

    Each range needs ``start < last`` and no overlap with the others (EINVAL);
    none may touch a reserved range (EADDRINUSE).  Zero ranges clear the list.
    """
    cmd = ucmd.cmd
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
    loaded: list[tuple[int, int]] = []
    for i in range(int(cmd.num_iovas)):
        start, last = _struct.unpack("<QQ", ucmd.task.mm.read(int(cmd.allowed_iovas) + 16 * i, 16))
        if start >= last:
            raise KernelError(EINVAL, f"range {i}: start {start:#x} is not below last {last:#x}")
        for s, l in loaded:
            if s <= last and start <= l:
                raise KernelError(EINVAL, f"range {i} [{start:#x}, {last:#x}] overlaps [{s:#x}, {l:#x}]")
        loaded.append((start, last))
    ioas.iopt.set_allow_iova(loaded)
    return 0


# -- IOMMU_IOAS_MAP / MAP_FILE / COPY --------------------------------------------------------------
def iommufd_ioas_map(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_MAP``: map ``length`` bytes of the caller's memory at ``user_va``.

    Flag and field checks come first (EOPNOTSUPP, EOVERFLOW, then EINVAL for
    neither READABLE nor WRITEABLE), then the IOAS (ENOENT), then placement.
    The chosen IOVA is written back.
    """
    cmd = ucmd.cmd
    if cmd.flags & ~_MAP_FLAGS or getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags & ~_MAP_FLAGS:#x} or __reserved set")
    if cmd.iova >= ULONG_MAX or cmd.length >= ULONG_MAX:
        raise KernelError(EOVERFLOW, "iova or length is U64_MAX")
    if not cmd.flags & _RW:
        raise KernelError(EINVAL, "neither IOMMU_IOAS_MAP_READABLE nor IOMMU_IOAS_MAP_WRITEABLE")
    ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
    prot = conv_iommu_prot(cmd.flags)
    pages, start_byte = iopt_alloc_user_pages(int(cmd.user_va), int(cmd.length), bool(prot & IOMMU_WRITE),
                                              mm=ucmd.task.mm, uid=ucmd.task.uid,
                                              account_mode=_pages_account_mode(ucmd))
    iova = _map_common(ucmd, ioas, pages, start_byte)
    cmd.iova = iova
    ucmd.respond()
    return 0


def _map_common(ucmd: Ucmd, ioas: Ioas, pages: IoptPages, start_byte: int) -> int:
    """``iopt_map_common``: one slice of fresh pages, placed fixed or automatically."""
    cmd = ucmd.cmd
    if ucmd.ictx.account_mode == IOPT_PAGES_ACCOUNT_MM and pages.account_mode == IOPT_PAGES_ACCOUNT_USER:
        pages.account_mode = IOPT_PAGES_ACCOUNT_MM
    flags = 0 if cmd.flags & ui.IOMMU_IOAS_MAP_FIXED_IOVA else IOPT_ALLOC_IOVA
    length = int(cmd.length)
    try:
        return ioas.iopt.map_pages([PagesSlice(pages, start_byte, length)], length, int(cmd.iova),
                                   conv_iommu_prot(cmd.flags), flags)
    except KernelError:
        pages.discard()  # no area took the pages: release what they hold
        raise


def iommufd_ioas_map_file(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_MAP_FILE``: map ``length`` bytes of the memfd ``fd`` from offset ``start``.

    The model keeps its own duplicate of the descriptor for as long as a
    mapping uses the file, so the caller may close its copy.  Writable needs
    a writable, unsealed file (EPERM).
    """
    cmd = ucmd.cmd
    if cmd.flags & ~_MAP_FLAGS:
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags & ~_MAP_FLAGS:#x}")
    if cmd.iova >= ULONG_MAX or cmd.length >= ULONG_MAX:
        raise KernelError(EOVERFLOW, "iova or length is U64_MAX")
    if not cmd.flags & _RW:
        raise KernelError(EINVAL, "neither IOMMU_IOAS_MAP_READABLE nor IOMMU_IOAS_MAP_WRITEABLE")
    ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
    fd = ucmd.task.fget_raw(int(cmd.fd))
    prot = conv_iommu_prot(cmd.flags)
    try:
        pages, start_byte = iopt_alloc_file_pages(fd, int(cmd.start), int(cmd.length), bool(prot & IOMMU_WRITE),
                                                  mm=ucmd.task.mm, uid=ucmd.task.uid,
                                                  account_mode=_pages_account_mode(ucmd))
    except BaseException:
        import os

        os.close(fd)
        raise
    iova = _map_common(ucmd, ioas, pages, start_byte)
    cmd.iova = iova
    ucmd.respond()
    return 0


def iommufd_ioas_copy(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_COPY``: map pages already mapped in one IOAS into another, sharing them.

    The source range must be covered by mappings without gaps (ENOENT); it
    may span several mappings, each becoming its own mapping in the
    destination.  Write access cannot be added to pages mapped read-only (EPERM).
    """
    cmd = ucmd.cmd
    if cmd.flags & ~_MAP_FLAGS:
        raise KernelError(EOPNOTSUPP, f"unknown flags {cmd.flags & ~_MAP_FLAGS:#x}")
    if cmd.length >= ULONG_MAX or cmd.src_iova >= ULONG_MAX or cmd.dst_iova >= ULONG_MAX:
        raise KernelError(EOVERFLOW, "length, src_iova or dst_iova is U64_MAX")
    if not cmd.flags & _RW:
        raise KernelError(EINVAL, "neither IOMMU_IOAS_MAP_READABLE nor IOMMU_IOAS_MAP_WRITEABLE")
    src = get_ioas(ucmd.ictx, cmd.src_ioas_id)
    slices = src.iopt.get_pages(int(cmd.src_iova), int(cmd.length))
    dst = get_ioas(ucmd.ictx, cmd.dst_ioas_id)
    flags = 0 if cmd.flags & ui.IOMMU_IOAS_MAP_FIXED_IOVA else IOPT_ALLOC_IOVA
    iova = dst.iopt.map_pages(slices, int(cmd.length), int(cmd.dst_iova), conv_iommu_prot(cmd.flags), flags)
    cmd.dst_iova = iova
    ucmd.respond()
    return 0


# -- IOMMU_IOAS_UNMAP ------------------------------------------------------------------------------
def iommufd_ioas_unmap(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_UNMAP``: remove whole mappings in a range; ``length`` returns the bytes removed.

    Unlike type1, finding nothing is ENOENT, and so is a range cutting a
    mapping (whole mappings before that one are already gone then, and the
    count is not reported).  ``iova 0, length U64_MAX`` means all and
    succeeds on an empty IOAS.
    """
    cmd = ucmd.cmd
    ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
    if cmd.iova == 0 and cmd.length == ULONG_MAX:
        unmapped = ioas.iopt.unmap_all()
    else:
        if cmd.iova >= ULONG_MAX or cmd.length >= ULONG_MAX:
            raise KernelError(EOVERFLOW, "iova or length is U64_MAX (only iova 0 with U64_MAX means all)")
        rc, unmapped = ioas.iopt.unmap_iova(int(cmd.iova), int(cmd.length))
        if rc:
            last = int(cmd.iova + cmd.length - 1)
            cut = ioas.iopt.areas.first_overlap(int(cmd.iova), last)
            why = (f"the mapping [{cut[0]:#x}, {cut[1]:#x}] sticks out of [{cmd.iova:#x}, {last:#x}]: mappings "
                   "are never split" if cut else f"nothing is mapped in [{cmd.iova:#x}, {last:#x}]")
            raise KernelError(rc, why)
    cmd.length = unmapped
    ucmd.respond()
    return 0


# -- IOMMU_IOAS_CHANGE_PROCESS ---------------------------------------------------------------------
def iommufd_ioas_change_process(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_CHANGE_PROCESS``: charge every mapping of every IOAS to the calling process.

    Only file-backed mappings can change owner: any mapping of user virtual
    addresses (``IOMMU_IOAS_MAP`` or a copy of one) fails the whole call with
    EINVAL and nothing changes -- from the same process too.  Calling it from
    the owning process is a successful no-op.
    """
    cmd = ucmd.cmd
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    ioases = sorted((o for o in ucmd.ictx.objects.values() if isinstance(o, Ioas)), key=lambda o: o.id)
    for ioas in ioases:
        for _, _, area in ioas.iopt.areas:
            if area.pages.type == IOPT_ADDRESS_USER:
                raise KernelError(EINVAL, f"IOAS {ioas.id} maps user memory at IOVA {area.iova:#x}: only "
                                          "IOMMU_IOAS_MAP_FILE mappings can move to another process")
    task = ucmd.task
    for ioas in ioases:
        for _, _, area in ioas.iopt.areas:
            pages = area.pages
            if pages.source_pid != task.pid or pages.source_uid != task.uid:
                pages.mm = task.mm
                pages.source_pid = task.pid
                pages.source_uid = task.uid
    return 0


# -- IOMMU_OPTION ----------------------------------------------------------------------------------
def iommufd_option_rlimit_mode(ucmd: Ucmd) -> None:
    """RLIMIT_MODE: per-user (0) or per-process (1) accounting; SET needs CAP_SYS_RESOURCE and an empty ctx."""
    cmd, ictx = ucmd.cmd, ucmd.ictx
    if cmd.object_id:
        raise KernelError(EOPNOTSUPP, "RLIMIT_MODE is global: object_id must be 0")
    if cmd.op == ui.IOMMU_OPTION_OP_GET:
        cmd.val64 = int(ictx.account_mode == IOPT_PAGES_ACCOUNT_MM)
        return
    if cmd.op == ui.IOMMU_OPTION_OP_SET:
        if not ucmd.task.capable("CAP_SYS_RESOURCE"):
            raise KernelError(EPERM, "setting RLIMIT_MODE needs CAP_SYS_RESOURCE")
        if ictx.objects:
            raise KernelError(EBUSY, "RLIMIT_MODE can only change before any object exists")
        if cmd.val64 == 0:
            ictx.account_mode = IOPT_PAGES_ACCOUNT_USER
        elif cmd.val64 == 1:
            ictx.account_mode = IOPT_PAGES_ACCOUNT_MM
        else:
            raise KernelError(EINVAL, f"RLIMIT_MODE value {cmd.val64} is not 0 or 1")
        return
    raise KernelError(EOPNOTSUPP, f"unknown op {cmd.op}")


def iommufd_ioas_option(ucmd: Ucmd) -> None:
    """HUGE_PAGES of IOAS ``object_id``: 1 (default) allows large IOMMU pages, 0 forces 4 KiB ones.

    Disabling raises the IOVA alignment to the page size and is refused
    (EINVAL) once a page table of the IOAS holds mappings.
    """
    cmd = ucmd.cmd
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    ioas = get_ioas(ucmd.ictx, cmd.object_id)
    if cmd.option_id != ui.IOMMU_OPTION_HUGE_PAGES:
        raise KernelError(EOPNOTSUPP, f"unknown option {cmd.option_id}")
    if cmd.op == ui.IOMMU_OPTION_OP_GET:
        cmd.val64 = int(not ioas.iopt.disable_large_pages)
        return
    if cmd.op == ui.IOMMU_OPTION_OP_SET:
        if cmd.val64 == 0:
            ioas.iopt.disable_large_pages_()
            return
        if cmd.val64 == 1:
            ioas.iopt.enable_large_pages()
            return
        raise KernelError(EINVAL, f"HUGE_PAGES value {cmd.val64} is not 0 or 1")
    raise KernelError(EOPNOTSUPP, f"unknown op {cmd.op}")


# -- IOMMU_IOAS_NOIOMMU_GET_PA ---------------------------------------------------------------------
def iommufd_ioas_noiommu_get_pa(ucmd: Ucmd) -> int:
    """``IOMMU_IOAS_NOIOMMU_GET_PA``: physical addresses exist only for no-IOMMU devices.

    The simulated machine has none and no physical memory to report, so a
    mapped IOVA is refused with EOPNOTSUPP after the generic checks
    (privilege, flags, IOAS, mapping).  The kernel source of this newest
    command was not available to check; the errnos follow its uapi comment.
    """
    cmd = ucmd.cmd
    if not ucmd.task.capable("CAP_SYS_RAWIO"):
        raise KernelError(EPERM, "physical addresses need CAP_SYS_RAWIO")
    if cmd.flags or getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "flags or __reserved is not zero")
    ioas = get_ioas(ucmd.ictx, cmd.ioas_id)
    if ioas.iopt.areas.find(int(cmd.iova)) is None:
        raise KernelError(ENOENT, f"IOVA {cmd.iova:#x} is not mapped")
    raise KernelError(EOPNOTSUPP, "no no-IOMMU device uses this IOAS: there are no physical addresses to report")


__all__ = [
    "Ioas", "iommufd_ioas_alloc", "get_ioas", "conv_iommu_prot", "iommufd_ioas_alloc_ioctl",
    "iommufd_ioas_iova_ranges", "iommufd_ioas_allow_iovas", "iommufd_ioas_map", "iommufd_ioas_map_file",
    "iommufd_ioas_copy", "iommufd_ioas_unmap", "iommufd_ioas_change_process", "iommufd_option_rlimit_mode",
    "iommufd_ioas_option", "iommufd_ioas_noiommu_get_pa",
]
