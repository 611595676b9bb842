"""The request-number encoding against values the kernel's own macros produce."""

from __future__ import annotations

import ctypes

import pytest

from pyvfio.uapi.ioctl import _IO, _IOC, _IOR, _IOW, _IOWR, IocFields, ioc_decode


def test_plain_io_matches_kernel_values() -> None:
    # rust-vmm's golden value and the kernel's: VFIO_GET_API_VERSION == _IO(';', 100) == 0x3b64
    assert _IO(";", 100) == 0x3B64
    assert _IO(0x3B, 0x80) == 0x3B80  # IOMMU_DESTROY


def test_sized_forms_match_asm_generic_layout() -> None:
    # KVM_GET_API_VERSION = _IO(0xAE, 0); KVM_IRQFD = _IOW(0xAE, 0x76, struct kvm_irqfd) (32 bytes)
    assert _IO(0xAE, 0) == 0xAE00
    assert _IOW(0xAE, 0x76, 32) == 0x4020AE76
    assert _IOR(0xAE, 0x8E, 1032) == 0x8408AE8E  # KVM_GET_LAPIC, struct kvm_lapic_state
    assert _IOWR(0xAE, 0x05, ctypes.c_uint64) == 0xC008AE05
    assert _IOC(3, "x", 1, 4) == _IOWR("x", 1, 4)


def test_decode_round_trip() -> None:
    request = _IOWR(";", 117, 16)
    f = ioc_decode(request)
    assert f == IocFields(3, 0x3B, 117, 16)
    assert f.direction_name == "read|write" and f.type_char == ";"
    assert ioc_decode(0x3B71) == IocFields(0, 0x3B, 0x71, 0)
    assert ioc_decode(0x3B71).direction_name == "none"
    assert ioc_decode(_IOR(1, 2, 3)).direction_name == "read"
    assert ioc_decode(_IOW(1, 2, 3)).direction_name == "write"
    assert ioc_decode(_IO(1, 2)).type_char == "0x01"


@pytest.mark.parametrize(
    "call",
    [
        lambda: _IOC(4, ";", 1, 0),
        lambda: _IO(";", 256),
        lambda: _IOW(";", 1, 1 << 14),
        lambda: _IO(256, 1),
        lambda: _IO(-1, 1),
        lambda: ioc_decode(-1),
        lambda: ioc_decode(1 << 32),
    ],
)
def test_out_of_range_fields_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
