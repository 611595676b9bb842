"""The iommufd context: ``/dev/iommu``, its object table and ioctl dispatch (``drivers/iommu/iommufd/main.c``).

Every command is ``_IO(';', 0x80 + n)`` and carries its own length in its
first u32, ``size``.  The dispatcher applies the kernel's versioning rules
before any command code runs, so the errno tells a program which layer it
tripped over:

* an unknown command number -> ``ENOTTY``;
* ``size`` below the command's minimum (the end of its last mandatory
  field) -> ``EINVAL``;
* ``size`` beyond the struct this kernel knows, with any of those extra
  bytes non-zero -> ``E2BIG`` (a newer program used a field this kernel
  lacks); zero extra bytes are fine, and a short ``size`` reads as if the
  missing tail were zero.

Results are copied back only when a command succeeds (``iommufd_ucmd_respond``),
never more than ``size`` bytes.  The table hands out the lowest free id
starting at 1, so ids of destroyed objects are reused.  Objects hold
references on each other (``users``); ``IOMMU_DESTROY`` refuses (``EBUSY``)
anything still referenced -- an IOAS with page tables, a page table with
devices -- and closing the last reference to the context destroys everything
leaf first.  Bound devices and fault-queue descriptors keep the context alive
after its own descriptor is closed, as ``iommufd_ctx_get`` does.
"""

from __future__ import annotations

import ctypes
import heapq
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple, Optional, TypeVar

from ...uapi import iommufd as ui
from ...uapi.struct import offsetof, offsetofend
from ..errno import E2BIG, EBUSY, EINVAL, ENOENT, ENOTTY, EOPNOTSUPP, KernelError
from ..file import File, Task, UserArg

if TYPE_CHECKING:
    from ..group import VfioGroup
    from ..vfio_main import Vfio
    from .device import IommufdDevice, IommufdGroup
    from .ioas import Ioas

U32_MAX = 0xFFFFFFFF
_ID_LIMIT = (1 << 31) - 1  # xa_limit_31b

_O = TypeVar("_O", bound="IommufdObject")


# -- copying between the caller and the model ------------------------------------------------------
def copy_from_user(task: Task, arg: UserArg, offset: int, length: int) -> bytes:
    """``length`` bytes of the caller's argument at ``offset`` (``copy_from_user`` on the ioctl pointer).

    Bytes inside the buffer the caller passed come from its copied-in image;
    bytes beyond it (a ``size``/``argsz`` claiming more than the object) are
    read from the caller's memory, EFAULT where unmapped.  An integer
    argument is an address: everything is read from memory.
    """
    out = bytearray()
    if arg.buf is not None and offset < arg.user_len:
        take = min(length, arg.user_len - offset)
        out += arg.buf[offset: offset + take]
        offset += take
        length -= take
    if length > 0:
        out += task.mm.read(arg.value + offset, length)
    return bytes(out)


def copy_to_user(task: Task, arg: UserArg, offset: int, data: bytes) -> None:
    """Write ``data`` into the caller's argument at ``offset`` (``copy_to_user``), EFAULT where unmapped."""
    if arg.buf is not None and offset < arg.user_len:
        take = min(len(data), arg.user_len - offset)
        arg.buf[offset: offset + take] = data[:take]
        data = data[take:]
        offset += take
    if data:
        task.mm.write(arg.value + offset, data)


def check_zeroed_user(task: Task, arg: UserArg, offset: int, length: int) -> bool:
    """Whether ``length`` bytes of the argument from ``offset`` are all zero (EFAULT if unreadable)."""
    chunk = 1 << 20
    while length > 0:
        n = min(chunk, length)
        if any(copy_from_user(task, arg, offset, n)):
            return False
        offset += n
        length -= n
    return True


def copy_struct_from_user(task: Task, arg: UserArg, ksize: int, usize: int) -> bytearray:
    """``copy_struct_from_user``: the caller's ``usize`` bytes as the kernel's ``ksize``-byte struct.

    A shorter caller struct is zero-extended; a longer one must have only
    zeros past ``ksize``, else E2BIG -- a field this kernel does not know was
    used.
    """
    if usize > ksize and not check_zeroed_user(task, arg, ksize, usize - ksize):
        raise KernelError(E2BIG, f"bytes {ksize}..{usize} of the argument are not zero: it uses fields "
                                 "this kernel does not know")
    buf = bytearray(ksize)
    n = min(ksize, usize)
    buf[:n] = copy_from_user(task, arg, 0, n)
    return buf


# -- objects ---------------------------------------------------------------------------------------
class IommufdObject:
    """``struct iommufd_object``: an entry of the context's id table.

    ``users`` counts the references other objects, attachments and
    descriptors hold on this one (the table's own reference is not
    counted): only an object with ``users == 0`` may be destroyed.
    """

    kind: ClassVar[str] = "object"

    def __init__(self, ictx: "IommufdCtx") -> None:
        self.ictx = ictx
        self.id = 0
        self.users = 0
        self.live = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id {self.id} users {self.users}>"

    def destroy(self) -> None:
        """The type's teardown (``iommufd_object_ops.destroy``): drop what this object holds on others."""

    def holds(self) -> list["IommufdObject"]:
        """The objects this one holds a ``users`` reference on (for the invariant checker)."""
        return []

    def external_users(self) -> int:
        """References held on this object by things outside the table (a driver, an attachment, an fd)."""
        return 0


class Ucmd:
    """``struct iommufd_ucmd``: one command in flight -- the kernel's copy of the argument and who called.

    ``cmd`` is the command's struct over a private, zero-extended buffer;
    :meth:`respond` copies it back to the caller (at most ``size`` bytes),
    which commands do only once they have succeeded.
    """

    def __init__(self, ictx: "IommufdCtx", task: Task, arg: UserArg, cls: type[ctypes.Structure],
                 user_size: int, buf: bytearray) -> None:
        self.ictx = ictx
        self.task = task
        self.arg = arg
        self.user_size = user_size
        self.buf = buf
        self.cmd: Any = cls.from_buffer(buf)

    def respond(self) -> None:
        """``iommufd_ucmd_respond``: copy the result back (EFAULT if the caller's memory is gone)."""
        copy_to_user(self.task, self.arg, 0, bytes(self.buf[: min(self.user_size, len(self.buf))]))


Handler = Callable[[Ucmd], int]


class IoctlOp(NamedTuple):
    """One row of ``iommufd_ioctl_ops``: the full request number, its struct, minimum size and handler."""

    request: int
    struct: type[ctypes.Structure]
    min_size: int
    handler: Handler


def _offsetofend(cls: type[ctypes.Structure], field: str) -> int:
    f = getattr(cls, field)
    return int(f.offset + f.size)


_OPS: Optional[dict[int, IoctlOp]] = None
_NR_SLOTS = 0


def iommufd_ioctl_ops() -> dict[int, IoctlOp]:
    """The command table, keyed by ``_IOC_NR`` (built on first use: the handlers live in sibling modules)."""
    global _OPS, _NR_SLOTS
    if _OPS is None:
        from . import eventq, hw_pagetable, ioas, vfio_compat, viommu

        rows: list[tuple[int, type[ctypes.Structure], str, Handler]] = [
            (ui.IOMMU_DESTROY, ui.iommu_destroy, "id", iommufd_destroy),
            (ui.IOMMU_FAULT_QUEUE_ALLOC, ui.iommu_fault_alloc, "out_fault_fd", eventq.iommufd_fault_alloc),
            (ui.IOMMU_GET_HW_INFO, ui.iommu_hw_info, "__reserved", hw_pagetable.iommufd_get_hw_info),
            (ui.IOMMU_HW_QUEUE_ALLOC, ui.iommu_hw_queue_alloc, "length", viommu.iommufd_hw_queue_alloc_ioctl),
            (ui.IOMMU_HWPT_ALLOC, ui.iommu_hwpt_alloc, "__reserved", hw_pagetable.iommufd_hwpt_alloc),
            (ui.IOMMU_HWPT_GET_DIRTY_BITMAP, ui.iommu_hwpt_get_dirty_bitmap, "data",
             hw_pagetable.iommufd_hwpt_get_dirty_bitmap),
            (ui.IOMMU_HWPT_INVALIDATE, ui.iommu_hwpt_invalidate, "__reserved",
             hw_pagetable.iommufd_hwpt_invalidate),
            (ui.IOMMU_HWPT_SET_DIRTY_TRACKING, ui.iommu_hwpt_set_dirty_tracking, "__reserved",
             hw_pagetable.iommufd_hwpt_set_dirty_tracking),
            (ui.IOMMU_IOAS_ALLOC, ui.iommu_ioas_alloc, "out_ioas_id", ioas.iommufd_ioas_alloc_ioctl),
            (ui.IOMMU_IOAS_ALLOW_IOVAS, ui.iommu_ioas_allow_iovas, "allowed_iovas",
             ioas.iommufd_ioas_allow_iovas),
            (ui.IOMMU_IOAS_CHANGE_PROCESS, ui.iommu_ioas_change_process, "__reserved",
             ioas.iommufd_ioas_change_process),
            (ui.IOMMU_IOAS_COPY, ui.iommu_ioas_copy, "src_iova", ioas.iommufd_ioas_copy),
            (ui.IOMMU_IOAS_IOVA_RANGES, ui.iommu_ioas_iova_ranges, "out_iova_alignment",
             ioas.iommufd_ioas_iova_ranges),
            (ui.IOMMU_IOAS_MAP, ui.iommu_ioas_map, "iova", ioas.iommufd_ioas_map),
            (ui.IOMMU_IOAS_MAP_FILE, ui.iommu_ioas_map_file, "iova", ioas.iommufd_ioas_map_file),
            (ui.IOMMU_IOAS_NOIOMMU_GET_PA, ui.iommu_ioas_noiommu_get_pa, "out_phys",
             ioas.iommufd_ioas_noiommu_get_pa),
            (ui.IOMMU_IOAS_UNMAP, ui.iommu_ioas_unmap, "length", ioas.iommufd_ioas_unmap),
            (ui.IOMMU_OPTION, ui.iommu_option, "val64", iommufd_option),
            (ui.IOMMU_VDEVICE_ALLOC, ui.iommu_vdevice_alloc, "virt_id", viommu.iommufd_vdevice_alloc_ioctl),
            (ui.IOMMU_VEVENTQ_ALLOC, ui.iommu_veventq_alloc, "out_veventq_fd", viommu.iommufd_veventq_alloc),
            (ui.IOMMU_VFIO_IOAS, ui.iommu_vfio_ioas, "__reserved", vfio_compat.iommufd_vfio_ioas),
            (ui.IOMMU_VIOMMU_ALLOC, ui.iommu_viommu_alloc, "out_viommu_id", viommu.iommufd_viommu_alloc_ioctl),
        ]
        ops = {}
        for request, cls, last, handler in rows:
            ops[request & 0xFF] = IoctlOp(request, cls, _offsetofend(cls, last), handler)
        _NR_SLOTS = max(ops) + 1 - ui.IOMMUFD_CMD_BASE
        _OPS = ops
    return _OPS


# -- the context -----------------------------------------------------------------------------------
class IommufdCtx(File):
    """``struct iommufd_ctx``: one open ``/dev/iommu``.

    ``refs`` counts what keeps the context alive: its descriptor, each bound
    device, each open fault-queue descriptor and each VFIO group attached
    through the compatibility path.  When it reaches zero every object is
    destroyed (areas unmapped, memfds the model held closed).
    """

    kind = "iommufd"
    name = "/dev/iommu"

    def __init__(self, core: "Vfio") -> None:
        self.core = core
        self.objects: dict[int, IommufdObject] = {}
        self._next_id = 1
        self._free_ids: list[int] = []
        self.vfio_ioas: Optional["Ioas"] = None
        from .io_pagetable import IOPT_PAGES_ACCOUNT_USER

        self.account_mode = IOPT_PAGES_ACCOUNT_USER
        self.igroups: dict[int, "IommufdGroup"] = {}
        self.compat_groups: dict[int, list["IommufdDevice"]] = {}
        self.refs = 1
        self.released = False

    def __repr__(self) -> str:
        return f"<IommufdCtx {len(self.objects)} objects refs {self.refs}>"

    # -- lifetime ---------------------------------------------------------------------------------
    def get(self) -> None:
        """``iommufd_ctx_get``: something (a device, a fault fd) keeps the context alive."""
        self.refs += 1

    def put(self) -> None:
        """``iommufd_ctx_put``; the last reference tears every object down (``iommufd_fops_release``)."""
        self.refs -= 1
        if self.refs == 0:
            self._release_objects()

    def release(self) -> None:
        self.put()

    def _release_objects(self) -> None:
        """Destroy leaf objects (nothing references them) until the table is empty."""
        while self.objects:
            leaves = [o for o in self.objects.values() if o.users == 0]
            if not leaves:  # a reference cycle would be a model bug; do not hang, drop them all
                leaves = list(self.objects.values())
                for o in leaves:
                    o.users = 0
            for obj in leaves:
                if obj.live and obj.users == 0:
                    self._unlink(obj)
                    obj.destroy()
        self.vfio_ioas = None
        self.released = True

    # -- the object table ------------------------------------------------------------------------
    def object_alloc(self, obj: _O) -> _O:
        """``_iommufd_object_alloc`` + finalize: give ``obj`` the lowest free id and publish it."""
        if self._free_ids:
            new_id = heapq.heappop(self._free_ids)
        else:
            if self._next_id > _ID_LIMIT:
                raise KernelError(EBUSY, "object ids exhausted")
            new_id = self._next_id
            self._next_id += 1
        obj.id = new_id
        obj.live = True
        self.objects[new_id] = obj
        return obj

    def _unlink(self, obj: IommufdObject) -> None:
        del self.objects[obj.id]
        heapq.heappush(self._free_ids, obj.id)
        obj.live = False
        if self.vfio_ioas is obj:
            self.vfio_ioas = None

    def object_abort(self, obj: IommufdObject) -> None:
        """``iommufd_object_abort_and_destroy``: undo a half-built object (its own teardown runs)."""
        if obj.live:
            self._unlink(obj)
        obj.destroy()

    def get_object(self, obj_id: int, cls: type[_O]) -> _O:
        """``iommufd_get_object``: the object of that id and type; anything else is ENOENT."""
        obj = self.objects.get(obj_id)
        if obj is None or not isinstance(obj, cls):
            what = cls.kind if cls is not IommufdObject else "object"
            raise KernelError(ENOENT, f"no {what} with id {obj_id}")
        return obj

    def object_remove(self, obj_id: int) -> None:
        """``iommufd_object_remove`` for ``IOMMU_DESTROY``: ENOENT if absent, EBUSY if still referenced."""
        obj = self.objects.get(obj_id)
        if obj is None:
            raise KernelError(ENOENT, f"no object with id {obj_id}")
        if obj.users:
            raise KernelError(EBUSY, f"{obj.kind} {obj_id} is still in use ({obj.users} references)")
        self._unlink(obj)
        obj.destroy()

    def object_destroy_user(self, obj: IommufdObject) -> None:
        """``iommufd_object_destroy_user``: the kernel-side owner removes its object (it holds the last ref)."""
        if obj.live:
            self._unlink(obj)
        obj.destroy()

    def put_and_try_destroy(self, obj: IommufdObject) -> None:
        """``iommufd_object_put_and_try_destroy``: drop a reference and destroy if nothing else holds it."""
        obj.users -= 1
        if obj.users == 0 and obj.live:
            self._unlink(obj)
            obj.destroy()

    # -- ioctl dispatch ---------------------------------------------------------------------------
    def ioctl(self, task: Task, request: int, arg: UserArg) -> int:
        """``iommufd_fops_ioctl``: route by command number, apply the size protocol, run the command."""
        ops = iommufd_ioctl_ops()
        nr = request & 0xFF
        if nr < ui.IOMMUFD_CMD_BASE or nr - ui.IOMMUFD_CMD_BASE >= _NR_SLOTS:
            from .vfio_compat import iommufd_vfio_ioctl

            return iommufd_vfio_ioctl(self, task, request, arg)
        user_size = int.from_bytes(copy_from_user(task, arg, 0, 4), "little")
        op = ops.get(nr)
        if op is None or op.request != request:
            raise KernelError(ENOTTY, f"{request:#x} is not an iommufd command")
        if user_size < op.min_size:
            raise KernelError(EINVAL, f"size {user_size} is below the minimum {op.min_size} of this command")
        buf = copy_struct_from_user(task, arg, ctypes.sizeof(op.struct), user_size)
        return op.handler(Ucmd(self, task, arg, op.struct, user_size, buf))

    # -- VFIO group compatibility (contract with group.py) ------------------------------------------
    def vfio_compat_group_attach(self, group: "VfioGroup") -> None:
        """A VFIO group joined this iommufd through ``VFIO_GROUP_SET_CONTAINER``.

        As the kernel does for a group used with an iommufd, each device is
        bound to this context and attached to the compatibility IOAS (the one
        ``IOMMU_VFIO_IOAS`` reports), which is created if none is set; the
        devices' DMA then translates through it.
        """
        from .device import vfio_compat_group_attach

        vfio_compat_group_attach(self, group)

    def vfio_compat_group_detach(self, group: "VfioGroup") -> None:
        """The group left (``VFIO_GROUP_UNSET_CONTAINER`` or close): detach and unbind its devices."""
        from .device import vfio_compat_group_detach

        vfio_compat_group_detach(self, group)

    # -- invariants -------------------------------------------------------------------------------
    def check_invariants(self) -> None:
        """What every fuzz step asserts: disjoint area trees and consistent references.

        Checks that ids match the table, each object's ``users`` equals the
        references actually held on it, nothing references a destroyed object,
        every IOAS's page table is self-consistent, pages are referenced by
        exactly the areas using them, and devices DMA through the page table
        they are attached to.
        """
        from .device import IommufdDevice
        from .ioas import Ioas

        if self.released:
            assert not self.objects, "a released context still has objects"
            return
        held: dict[int, int] = {}
        for oid, obj in self.objects.items():
            assert obj.id == oid and obj.live, f"{obj!r} is filed under id {oid}"
            assert 1 <= oid <= _ID_LIMIT, f"object id {oid} out of range"
            for other in obj.holds():
                assert other.live and self.objects.get(other.id) is other, \
                    f"{obj!r} references destroyed {other!r}"
                held[id(other)] = held.get(id(other), 0) + 1
        for obj in self.objects.values():
            expect = held.get(id(obj), 0) + obj.external_users()
            assert obj.users == expect, f"{obj!r}: users {obj.users}, references found {expect}"
        pages_refs: dict[int, tuple[Any, int]] = {}
        for obj in self.objects.values():
            if isinstance(obj, Ioas):
                obj.iopt.check_invariants()
                for _, _, area in obj.iopt.areas:
                    p = area.pages
                    pages_refs[id(p)] = (p, pages_refs.get(id(p), (p, 0))[1] + 1)
                for hwpt in obj.hwpt_list:
                    assert hwpt.live and hwpt.ioas is obj, f"{hwpt!r} listed on the wrong IOAS"
            if isinstance(obj, IommufdDevice):
                obj.check_invariants()
        for p, n in pages_refs.values():
            assert p.refs == n, f"{p!r}: refs {p.refs} but {n} areas use it"
            if p.type == "file":
                assert p.fd >= 0, f"{p!r} lost its file while areas use it"
        for gid, igroup in self.igroups.items():
            bound = [o for o in self.objects.values() if isinstance(o, IommufdDevice) and o.igroup is igroup]
            assert igroup.group.id == gid and igroup.refs == len(bound) > 0, f"iommufd group {gid} refs"
            assert (igroup.hwpt is None) == (not igroup.device_list), f"iommufd group {gid} attachment"
            assert all(d in bound for d in igroup.device_list), f"iommufd group {gid} lists an unbound device"
        for devs in self.compat_groups.values():
            assert all(d.live and d.compat for d in devs), "a compat group device was destroyed behind it"
        if self.vfio_ioas is not None:
            assert self.objects.get(self.vfio_ioas.id) is self.vfio_ioas, "compat IOAS is not in the table"
        assert self.refs > 0, "a live context without references"


# -- commands implemented here ---------------------------------------------------------------------
def iommufd_destroy(ucmd: Ucmd) -> int:
    """``IOMMU_DESTROY``: remove any object by id -- ENOENT if there is none, EBUSY if still referenced."""
    ucmd.ictx.object_remove(int(ucmd.cmd.id))
    return 0


def iommufd_option(ucmd: Ucmd) -> int:
    """``IOMMU_OPTION``: RLIMIT_MODE (global) and HUGE_PAGES (per IOAS); only ``val64`` is written back."""
    from .ioas import iommufd_ioas_option, iommufd_option_rlimit_mode

    cmd = ucmd.cmd
    if getattr(cmd, "__reserved"):
        raise KernelError(EOPNOTSUPP, "__reserved is not zero")
    if cmd.option_id == ui.IOMMU_OPTION_RLIMIT_MODE:
        iommufd_option_rlimit_mode(ucmd)
    elif cmd.option_id == ui.IOMMU_OPTION_HUGE_PAGES:
        iommufd_ioas_option(ucmd)
    else:
        raise KernelError(EOPNOTSUPP, f"unknown option {cmd.option_id}")
    off = offsetof(ui.iommu_option, "val64")
    copy_to_user(ucmd.task, ucmd.arg, off, bytes(ucmd.buf[off: off + 8]))
    return 0


__all__ = [
    "IommufdCtx", "IommufdObject", "Ucmd", "IoctlOp", "copy_from_user", "copy_to_user",
    "copy_struct_from_user", "check_zeroed_user", "iommufd_ioctl_ops", "U32_MAX",
]
