"""``python -m pyvfio``: small tools for people learning or debugging VFIO.

``decode`` answers "which ioctl is 0x3b71?" -- a question with several answers,
because VFIO reuses numbers across descriptor kinds -- and ``abi`` prints a
struct's layout the way ``pahole`` would, for readers checking their own
bindings against the kernel's.  ``info`` opens a device (the simulated edu by
default, a simulated kind, or a real PCI address) and reports what the kernel
says about it; ``demo`` is a guided tour on the simulated kernel.  Bad input
exits with status 2 and a sentence saying what was expected.
"""

from __future__ import annotations

import argparse
import ctypes
import difflib
import sys
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

if TYPE_CHECKING:
    from .device import Device
    from .discovery import OpenDevice

USAGE_ERROR = 2


def _uapi_modules() -> tuple[Any, ...]:
    from .uapi import iommufd, vfio

    return (vfio, iommufd)


class UsageError(Exception):
    """Input the command cannot act on; the message says what it expected."""


def _parse_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(f"{text!r} is neither an ioctl name nor a number (try 0x3b71 or 15217)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(f"{text} is not a 32-bit ioctl request number")
    return value


def cmd_decode(args: argparse.Namespace) -> int:
    from .uapi.ioctl import ioc_decode

    table = [d for m in _uapi_modules() for d in m.IOCTLS]
    text: str = args.request
    by_name = {d.name: d for d in table}
    if text.upper() in by_name or text in by_name:
        d = by_name.get(text, by_name.get(text.upper()))
        assert d is not None
        request = d.request
    elif text[:1].isdigit():
        request = _parse_number(text)
    else:
        close = difflib.get_close_matches(text.upper(), list(by_name), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"no VFIO or iommufd ioctl is named {text!r}{hint}")
    f = ioc_decode(request)
    print(f"{request:#06x}  dir={f.direction_name} type={f.type_char!r} nr={f.nr} ({f.nr:#x}) size={f.size}")
    matches = [d for d in table if d.request == request]
    if not matches:
        near = ""
        if f.type == ord(";") and f.size:
            plain = request & 0xFFFF
            if any(d.request == plain for d in table):
                near = (f"; VFIO/iommufd ioctls are plain _IO with no size bits -- "
                        f"did you mean {plain:#06x}?")
        raise UsageError(f"no VFIO or iommufd ioctl has request number {request:#x}{near}")
    if len(matches) > 1:
        print(f"  {len(matches)} ioctls share this number; the descriptor decides which one runs:")
    for d in matches:
        print(f"  {d.name:<40} on a {d.fd} fd ({d.header}), argument: {d.arg}")
    return 0


_C_NAMES = {
    ctypes.c_uint8: "__u8", ctypes.c_uint16: "__u16", ctypes.c_uint32: "__u32", ctypes.c_uint64: "__u64",
    ctypes.c_int8: "__s8", ctypes.c_int16: "__s16", ctypes.c_int32: "__s32", ctypes.c_int64: "__s64",
    ctypes.c_char: "char",
}


def c_type_name(ctype: Any) -> str:
    """How the header spells a field's type (``__aligned_u64`` reads as ``__u64``: same layout on x86_64)."""
    if ctype in _C_NAMES:
        return _C_NAMES[ctype]
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        return f"{c_type_name(ctype._type_)}[{getattr(ctype, '_length_') or ''}]"
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Union):
        return "union" if ctype.__name__.startswith("_") else f"union {ctype.__name__}"
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Structure):
        return "struct" if ctype.__name__.startswith("_") else f"struct {ctype.__name__}"
    return getattr(ctype, "__name__", str(ctype))


def layout_rows(cls: Any, base: int = 0, depth: int = 0) -> Iterator[tuple[int, int, str, str]]:
    """(offset, size, field, C type) rows, descending into anonymous unions as C lets you name them."""
    anonymous = set(getattr(cls, "_anonymous_", ()))
    for entry in cls._fields_:
        name, ctype = entry[0], entry[1]
        attr = getattr(cls, name)
        if name in anonymous:
            yield base + attr.offset, attr.size, "{" if depth >= 0 else "", c_type_name(ctype) + " (anonymous)"
            yield from layout_rows(ctype, base + attr.offset, depth + 1)
            continue
        yield base + attr.offset, attr.size, "  " * depth + name, c_type_name(ctype)


def find_struct(name: str) -> Any:
    name = name.removeprefix("struct ").removeprefix("union ").strip()
    structs = {cls.__name__: cls for m in _uapi_modules() for cls in m.STRUCTS}
    if name in structs:
        return structs[name]
    close = difflib.get_close_matches(name, list(structs), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else " (python -m pyvfio abi --list shows them all)"
    raise UsageError(f"no struct named {name!r} in vfio.h or iommufd.h{hint}")


def cmd_abi(args: argparse.Namespace) -> int:
    if args.list or not args.struct:
        for m in _uapi_modules():
            for cls in m.STRUCTS:
                print(f"{cls.__name__:<48} {ctypes.sizeof(cls):>4} bytes  ({m.__name__.rsplit('.', 1)[1]}.h)")
        return 0
    cls = find_struct(args.struct)
    kind = "union" if issubclass(cls, ctypes.Union) else "struct"
    print(f"{kind} {cls.__name__}: sizeof {ctypes.sizeof(cls)}, alignof {ctypes.alignment(cls)}")
    print(f"{'offset':>6} {'size':>5}  {'field':<28} C type")
    end = 0
    for offset, size, field, ctype in layout_rows(cls):
        if field == "{":
            print(f"{offset:>6} {size:>5}  {'':<28} {ctype}")
            continue
        if offset > end and not field.startswith(" "):
            print(f"{end:>6} {offset - end:>5}  {'(hole)':<28}")
        flex = ctype.endswith("[]")
        print(f"{offset:>6} {size:>5}  {field:<28} {ctype}{'  (flexible array)' if flex else ''}")
        if not field.startswith(" "):
            end = max(end, offset + size)
    if ctypes.sizeof(cls) > end:
        print(f"{end:>6} {ctypes.sizeof(cls) - end:>5}  {'(tail padding)':<28}")
    return 0


# ---------------------------------------------------------------------------------------------------------
# info


def _info_target(text: str) -> tuple[Any, str]:
    """The kernel and device name ``info`` should open: a fresh simulated machine, or the running Linux."""
    from .discovery import normalize_pci_address
    from .sim.devices import DEVICE_KINDS

    if text in DEVICE_KINDS:
        from .sim import Kernel

        kernel = Kernel()
        vdev = kernel.add_device(text)
        return kernel, vdev.address
    addr = normalize_pci_address(text)
    if addr is None:
        kinds = ", ".join(sorted(DEVICE_KINDS))
        raise UsageError(f"{text!r} is neither a simulated device kind ({kinds}) nor a PCI address like "
                         "0000:00:04.0")
    from .kernel import Linux

    return Linux(), addr


def _open_for_report(kernel: Any, name: str, backend: str) -> "OpenDevice":
    from .discovery import find_device, open_device
    from .errors import VfioError

    try:
        loc = find_device(kernel, name)
    except VfioError as e:
        raise UsageError(e.reason or str(e)) from None
    return open_device(kernel, loc, backend=backend)


def _feature_report(dev: "Device") -> list[str]:
    """One line per device feature the kernel knows for this device, with the directions it allows."""
    from .uapi import vfio as uv

    lines = []
    for feature in uv.VfioDeviceFeature:
        if not dev.feature_probe(int(feature)):
            continue
        dirs = [name for name, flag in (("GET", uv.VFIO_DEVICE_FEATURE_GET), ("SET", uv.VFIO_DEVICE_FEATURE_SET))
                if dev.feature_probe(int(feature), flag)]
        lines.append(f"    {feature.name:<28} {'/'.join(dirs) or 'probe only'}")
    return lines


def _migration_report(dev: "Device") -> list[str]:
    import ctypes

    from .info import flag_names
    from .uapi import vfio as uv

    flags = dev.migration_flags()
    if flags is None:
        return ["  migration: not supported (VFIO_DEVICE_FEATURE_MIGRATION: ENOTTY)"]
    lines = [f"  migration: {flag_names(uv.VfioMigrationFlag, flags)}"]
    raw = dev.feature(uv.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, uv.VFIO_DEVICE_FEATURE_GET,
                      size=ctypes.sizeof(uv.vfio_device_feature_mig_state))
    state = uv.vfio_device_feature_mig_state.from_buffer_copy(raw).device_state
    try:
        state_name = uv.vfio_device_mig_state(state).name.removeprefix("VFIO_DEVICE_STATE_")
    except ValueError:
        state_name = str(state)
    lines.append(f"    device state: {state_name}")
    if dev.feature_probe(uv.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, uv.VFIO_DEVICE_FEATURE_GET):
        raw = dev.feature(uv.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, uv.VFIO_DEVICE_FEATURE_GET,
                          size=ctypes.sizeof(uv.vfio_device_feature_mig_data_size))
        size = uv.vfio_device_feature_mig_data_size.from_buffer_copy(raw).stop_copy_length
        lines.append(f"    stop-copy data: about {size} bytes")
    return lines


def _iommu_report(od: "OpenDevice") -> list[str]:
    from .info import flag_names
    from .uapi import vfio as uv

    lines = []
    c, ioas, ictx = od.container, od.ioas, od.iommufd
    if c is not None:
        info = c.iommu_info()
        names = {uv.VFIO_TYPE1v2_IOMMU: "type1v2", uv.VFIO_TYPE1_IOMMU: "type1"}
        kind = names.get(c.iommu_type or 0, str(c.iommu_type))
        lines.append(f"  IOMMU: {kind} container, group {od.location.group_id}, "
                     f"flags {flag_names(uv.VfioIommuInfoFlag, info.flags)}, page sizes {info.iova_pgsizes:#x}")
        lines += [f"    {cap.describe()}" for cap in info.caps]
    elif ioas is not None and ictx is not None:
        dev = od.device
        lines.append(f"  IOMMU: iommufd, devid {dev.devid}, attached to IOAS {ioas.id} through HWPT {dev.hwpt_id}")
        lines.append("    IOVA ranges: " + ", ".join(str(r) for r in ioas.iova_ranges())
                     + f" (alignment {ioas.iova_alignment:#x})")
        try:
            hw = ictx.hw_info(dev)
            lines.append(f"    hardware: {hw.type_name}, capabilities {hw.capability_names}")
        except OSError as e:
            lines.append(f"    hardware: IOMMU_GET_HW_INFO failed ({e})")
    return lines


def device_report(od: "OpenDevice") -> list[str]:
    """The lines of ``python -m pyvfio info`` for an :class:`~pyvfio.discovery.OpenDevice`."""
    from .device import IRQ_NAMES, REGION_NAMES

    dev, loc = od.device, od.location
    where = f"simulated {loc.kind}" if loc.simulated else f"driver {loc.driver}"
    how = (f"cdev {loc.cdev} bound to /dev/iommu" if od.backend == "iommufd"
           else f"group {loc.group_path} in a type1 container")
    cfg = dev.config_read(0, 12)
    vendor, device = int.from_bytes(cfg[0:2], "little"), int.from_bytes(cfg[2:4], "little")
    class_code = int.from_bytes(cfg[9:12], "little")
    info = dev.info
    lines = [f"{loc.name} [{vendor:04x}:{device:04x}] class {class_code:06x} ({where})",
             f"  opened through the {how}",
             f"  info flags: {info.flag_names}; {info.num_regions} regions, {info.num_irqs} IRQ indexes",
             "  device capabilities: " + (", ".join(c.describe() for c in info.caps) or "none"),
             "  regions:"]
    for r in dev.regions():
        if not r.size and r.index in REGION_NAMES:
            lines.append(f"    {r.index:>2} {r.name:<7} not implemented")
            continue
        lines.append(f"    {r.index:>2} {r.name:<7} {r.size:#10x} bytes at fd offset {r.offset:#x}, "
                     f"{flag_names_region(r.flags)}")
        lines += [f"         {c.describe()}" for c in r.caps]
    lines.append("  IRQs:")
    for index in range(info.num_irqs):
        try:
            irq = dev.irq_info(index)
        except OSError as e:  # e.g. ERR on a device that is not PCI Express: the kernel refuses the index
            lines.append(f"    {index:>2} {IRQ_NAMES.get(index, '?'):<6} not available ({e.strerror})")
            continue
        lines.append(f"    {irq.index:>2} {irq.name:<6} count {irq.count}, {irq.flag_names}")
    lines.append("  device features (VFIO_DEVICE_FEATURE PROBE):")
    lines += _feature_report(dev) or ["    none"]
    lines += _migration_report(dev)
    lines += _iommu_report(od)
    return lines


def flag_names_region(flags: int) -> str:
    from .info import flag_names
    from .uapi import vfio as uv

    return flag_names(uv.VfioRegionInfoFlag, flags)


def cmd_info(args: argparse.Namespace) -> int:
    kernel, name = _info_target(args.device)
    with _open_for_report(kernel, name, args.backend) as od:
        for line in device_report(od):
            print(line)
    return 0


# ---------------------------------------------------------------------------------------------------------
# demo


def cmd_demo(args: argparse.Namespace) -> int:
    """A short tour: find edu, open it, map DMA, copy memory through the device, take its MSI and INTx."""
    import os
    import select

    from .discovery import find_device, open_device
    from .sim import Kernel
    from .uapi import vfio as uv

    def say(step: str, text: str) -> None:
        print(f"[{step}] {text}")

    def wait(efd: int, timeout: float) -> int:
        ready, _, _ = select.select([efd], [], [], timeout)
        return int.from_bytes(os.read(efd, 8), "little") if ready else 0

    edu_ident, edu_irq_status, edu_irq_raise, edu_irq_ack = 0x00, 0x24, 0x60, 0x64
    edu_dma_src, edu_dma_dst, edu_dma_count, edu_dma_cmd, edu_buffer = 0x80, 0x88, 0x90, 0x98, 0x40000

    quiet = False
    kernel = Kernel()
    kernel.add_device("edu")
    say("machine", "a simulated Linux kernel with QEMU's edu device plugged in and bound to vfio-pci")
    loc = find_device(kernel, "edu")
    say("find", f"edu is {loc.name}: IOMMU group {loc.group_id} ({loc.group_path}), cdev {loc.cdev}")
    with open_device(kernel, loc, backend=args.backend) as od:
        dev = od.device
        if od.ioas is not None:
            say("open", f"opened {loc.cdev}, bound it to /dev/iommu (device id {dev.devid}) and attached it to "
                        f"IOAS {od.ioas.id}; the kernel built page table {dev.hwpt_id} for it")
        else:
            say("open", f"opened the container /dev/vfio/vfio and group {loc.group_path}, chose the type1v2 IOMMU, "
                        f"and asked the group for device {loc.name}")
        info = dev.info
        say("info", f"the kernel reports {info.flag_names}, {info.num_regions} regions, {info.num_irqs} IRQ indexes")
        bar0 = dev.region(uv.VFIO_PCI_BAR0_REGION_INDEX)
        with bar0.mmap(0, 4096) as regs:
            ident = regs.read32(edu_ident)
            say("mmio", f"BAR0 ({bar0.size // 1024} KiB) mapped; its ident register reads {ident:#010x} "
                        "(major 1, minor 0, 0xed)")
            dev.set_bus_master()
            say("pci", "set Memory and Bus Master in PCI_COMMAND: without bus mastering the device may not DMA")
            with od.dma(2 * 4096, limit=1 << 28) as dma:
                say("dma", f"a 2-page buffer at {dma.vaddr:#x} is mapped for the device at IOVA {dma.iova:#x}")
                message = b"pyvfio: hello from RAM, through the edu device and back. " * 8
                dma.write(0, message)

                def copy(src: int, dst: int, to_ram: bool, irq: bool = False) -> None:
                    regs.write64(edu_dma_src, src)
                    regs.write64(edu_dma_dst, dst)
                    regs.write64(edu_dma_count, len(message))
                    regs.write64(edu_dma_cmd, 1 | (2 if to_ram else 0) | (4 if irq else 0))

                copy(dma.iova, edu_buffer, to_ram=False)
                say("dma", f"edu read {len(message)} bytes from IOVA {dma.iova:#x} into its own buffer")
                copy(edu_buffer, dma.iova + 4096, to_ram=True)
                back = dma.read(4096, len(message))
                say("dma", f"edu wrote them back to IOVA {dma.iova + 4096:#x}: "
                           f"{'identical' if back == message else 'DIFFERENT'} ({back[:24]!r}...)")
                if back != message:
                    return 1

                efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                try:
                    dev.set_irq_eventfds(uv.VFIO_PCI_MSI_IRQ_INDEX, 0, [efd])
                    say("msi", "MSI vector 0 now signals an eventfd; asking edu to interrupt when its next DMA is done")
                    copy(dma.iova, edu_buffer, to_ram=False, irq=True)
                    n = wait(efd, 1.0)
                    status = regs.read32(edu_irq_status)
                    regs.write32(edu_irq_ack, status)
                    say("msi", f"eventfd counted {n} interrupt(s); edu's interrupt status was {status:#x} (DMA done), "
                               "acknowledged")
                    dev.disable_irqs(uv.VFIO_PCI_MSI_IRQ_INDEX)
                    dev.set_irq_eventfds(uv.VFIO_PCI_INTX_IRQ_INDEX, 0, [efd])
                    say("intx", "switched to the legacy INTx line, which the kernel masks each time it fires")
                    regs.write32(edu_irq_raise, 0x2)
                    say("intx", f"edu raised its line: eventfd counted {wait(efd, 1.0)}; INTx is now masked")
                    regs.write32(edu_irq_ack, 0x2)
                    regs.write32(edu_irq_raise, 0x2)
                    quiet = wait(efd, 0.05) == 0
                    say("intx", "raised again while masked: " + ("no signal, as it should be" if quiet
                                                                 else "SIGNALLED (unexpected)"))
                    dev.unmask_intx()
                    say("intx", f"unmasked while the line was still up: the kernel signalled again at once "
                                f"(eventfd counted {wait(efd, 1.0)})")
                    regs.write32(edu_irq_ack, 0x2)
                    dev.unmask_intx()
                    dev.disable_irqs(uv.VFIO_PCI_INTX_IRQ_INDEX)
                finally:
                    os.close(efd)
            say("close", "the DMA buffer is unmapped and freed")
    leaked = kernel.open_files()
    say("close", "device, IOMMU context and descriptors closed in reverse order"
                 + (f"; LEAKED: {leaked}" if leaked else "; nothing left open"))
    print("done: that is the whole VFIO user-space driver loop -- find, open, map, DMA, interrupts, close.")
    return 0 if not leaked and quiet else 1


def _lspci_images(target: str, guest: bool) -> list[Any]:
    """What one ``lspci`` argument names: a sysfs address, a dump file, or a simulated device kind."""
    import os

    from .pci import lspci as L

    address = L.normalize_address(target)
    if guest and (address is not None or os.path.exists(target)):
        raise UsageError("--guest shows pyvfio's guest view of a simulated device (edu, mtty, pci); "
                         f"{target!r} is not one")
    if address is not None:
        try:
            return [L.read_sysfs(address)]
        except (OSError, ValueError) as e:
            raise UsageError(str(e)) from None
    if os.path.exists(target):
        try:
            return L.load_dump(target)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read {target}: {e}") from None
    from .sim.devices import DEVICE_KINDS

    if target not in DEVICE_KINDS:
        raise UsageError(f"{target!r} is neither a PCI address (0000:00:03.0), a dump file, nor a simulated "
                         f"device kind ({', '.join(sorted(DEVICE_KINDS))})")
    from .pci import VfioConfigRegion, VirtualConfig, open_group_device
    from .sim import Kernel

    kernel = Kernel()
    sim = kernel.add_device(target)
    with open_group_device(kernel, sim.group_id, sim.address) as fd:
        region = VfioConfigRegion(kernel, fd)
        if guest:
            vc = VirtualConfig(region)
            sizes = [b.size if b is not None else None for b in vc.bars]
            config, view = vc.read(0, vc.size), "guest view over vfio"
        else:
            sizes = [region.region(i).size for i in range(7)]
            config, view = region.config_read(0, region.size), "through vfio"
    return [L.DeviceImage(f"{L.short_address(sim.address)} (simulated {target}, {view})", config, sizes=sizes)]


def cmd_lspci(args: argparse.Namespace) -> int:
    from .pci import lspci as L

    images = [img for t in args.targets for img in _lspci_images(t, args.guest)] if args.targets \
        else [L.read_sysfs(a) for a in L.sysfs_addresses()]
    if not images:
        raise UsageError(f"no PCI functions in {L.SYSFS_PCI} (give an address, a dump file or a simulated kind)")
    for n, image in enumerate(images):
        if n:
            print()
        print("\n".join(L.describe(image)))
        if args.hex:
            print("\n".join(L.hex_dump(image.config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyvfio", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("decode", help="name the ioctl(s) behind a request number, or the number of a name")
    p.add_argument("request", help="a request number (0x3b71, 15217) or an ioctl name")
    p.set_defaults(func=cmd_decode)
    p = sub.add_parser("abi", help="print a UAPI struct's layout: offset, size, field, C type")
    p.add_argument("struct", nargs="?", help="a struct name, e.g. vfio_region_info")
    p.add_argument("--list", action="store_true", help="list every struct of vfio.h and iommufd.h")
    p.set_defaults(func=cmd_abi)
    p = sub.add_parser("info", help="report a device: info flags, regions and their caps, IRQs, features, migration")
    p.add_argument("device", nargs="?", default="edu",
                   help="a simulated device kind (edu, mtty, pci; default edu) or a real PCI address (0000:00:04.0)")
    p.add_argument("--backend", choices=("auto", "iommufd", "type1"), default="auto",
                   help="how to open it: cdev + iommufd, group + type1 container, or auto (iommufd when available)")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="a guided tour on the simulated kernel: DMA with the edu device, MSI and INTx "
                                   "(`demo cpr --help`: live update; `demo migrate --help`: live migration)")
    p.add_argument("--backend", choices=("auto", "iommufd", "type1"), default="auto",
                   help="the IOMMU path the tour takes (default: iommufd when available, else type1)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("lspci", help="decode config space like lspci -vv: header, BARs, capabilities")
    p.add_argument("targets", nargs="*", metavar="ADDRESS|FILE|SIM-DEVICE",
                   help="a PCI address (sysfs), a raw or lspci -x dump file, or a simulated kind (edu, mtty, pci); "
                        "none: every function in sysfs")
    p.add_argument("--hex", action="store_true", help="also print the bytes, as lspci -xxx does")
    p.add_argument("--guest", action="store_true",
                   help="for a simulated device: show the guest's view (pyvfio.pci.VirtualConfig), not the kernel's")
    p.set_defaults(func=cmd_lspci)
    return parser


def cmd_demo_migrate(argv: Sequence[str]) -> int:
    """``demo migrate``: live migration of a simulated mtty between two processes over loopback TCP.

    Progress lines for people, then one JSON line for scripts.  Exit 0 only when the destination's device
    state and guest memory match the source's.  ``--netns`` runs the same migration across a veth link between
    two network namespaces; where that cannot work (not root, no iproute2) the exit status is 2 with the reason.
    """
    import json

    from .migration import netns
    from .migration.sim_demo import run_demo

    p = argparse.ArgumentParser(prog="python -m pyvfio demo migrate",
                                description=cmd_demo_migrate.__doc__.split("\n\n")[0] if cmd_demo_migrate.__doc__ else "")
    p.add_argument("--precopy", action=argparse.BooleanOptionalAction, default=True,
                   help="iterate PRE_COPY rounds before stop-and-copy (default); --no-precopy goes straight to STOP_COPY")
    p.add_argument("--dirty-rate", type=int, default=2, metavar="PAGES",
                   help="guest pages the device's DMA dirties after each pre-copy round (default 2)")
    p.add_argument("--pages", type=int, default=64, help="guest memory size in 4 KiB pages (default 64)")
    p.add_argument("--rounds", type=int, default=8, help="pre-copy rounds at most (default 8)")
    p.add_argument("--netns", action="store_true",
                   help="migrate between two new network namespaces joined by a veth pair instead of over loopback "
                        "(needs root and iproute2's ip)")
    args = p.parse_args(list(argv))
    if args.dirty_rate < 0 or args.pages <= 0 or args.rounds <= 0:
        print("pyvfio demo migrate: --dirty-rate must be >= 0, --pages and --rounds > 0", file=sys.stderr)
        return USAGE_ERROR
    if args.netns:
        reason = netns.netns_available()
        if reason is not None:
            print(f"pyvfio demo migrate: --netns is not available here: {reason}", file=sys.stderr)
            return USAGE_ERROR
    try:
        result = run_demo(precopy=args.precopy, dirty_rate=args.dirty_rate, npages=args.pages, rounds=args.rounds,
                          progress=print, netns=args.netns)
    except netns.NetnsError as e:  # the namespaces could not be set up after all; the message names the step
        print(f"pyvfio demo migrate: --netns: {e}", file=sys.stderr)
        return USAGE_ERROR
    print(json.dumps(result))
    return 0 if result.get("ok") else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    # `demo cpr`: the live-update demo has its own options (pyvfio.cpr.demo); plain `demo` is the tour
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:2] == ["demo", "cpr"]:
        from .cpr import demo as cpr_demo

        return cpr_demo.main(args_list[2:])
    if args_list[:2] == ["demo", "migrate"]:
        return cmd_demo_migrate(args_list[2:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except UsageError as e:
        print(f"pyvfio {args.command}: {e}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:
        return 0
    except OSError as e:  # a kernel call failed after the device was found: say which and why
        print(f"pyvfio {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
