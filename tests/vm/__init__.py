"""The VM lane: pyvfio's tests on a real Linux VFIO/iommufd stack, in a QEMU guest.

``harness`` (host side) boots the guest and reports; ``guest`` (guest side) binds the ``edu`` device to
vfio-pci and runs the command; ``init.sh`` is the initramfs's /init.  ``python3 -m tests.vm`` is the
command line; ``tests/test_vm_lane.py`` (marker ``vm``) runs the same from pytest.
"""
