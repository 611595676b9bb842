"""Layer 5: how a device interrupt reaches a guest -- eventfds, SET_IRQS policy, KVM routes and irqfds.

The chain is device -> vfio-pci's handler -> an eventfd -> either KVM (an
irqfd injecting into the in-kernel interrupt controller) or the VMM's own
handler.  One module per link:

``eventfd``
    eventfds as vectors; the VMM's handler table.
``vfio_irqs``
    ``VFIO_DEVICE_SET_IRQS`` forms, and INTx / MSI / MSI-X controllers with
    QEMU's policy (MSI-X growth, per-vector mask emulation with a PBA).
``config_wiring``
    the listener that turns a guest's MSI / MSI-X / INTx programming in a
    :class:`~pyvfio.pci.config.VirtualConfig` (or a restored config state)
    into those controllers' calls.
``kvm``
    a small KVM VM (irqchip, vCPUs that never run, routes, irqfds, LAPIC and
    IOAPIC state) -- real ``/dev/kvm`` only.
``routing``
    the VMM's routing table: vector -> (eventfd, GSI route, KVM / VMM / parked).
``handoff``
    pending interrupts carried from one VM to a new one (SEMANTICS 5.4).

Import the submodules; nothing is re-exported here, so importing
``pyvfio.irq`` never touches ``/dev/kvm``.
"""
