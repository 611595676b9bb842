"""``python -m pyvfio decode`` and ``abi``: answers, and exit status 2 with a clear message on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyvfio.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_decode_shared_number_lists_each_fd_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "decode", "0x3b71")
    assert code == 0
    assert "VFIO_DEVICE_PCI_HOT_RESET" in out and "VFIO_IOMMU_MAP_DMA" in out
    assert "on a device fd" in out and "on a container fd" in out
    assert "struct vfio_iommu_type1_dma_map" in out
    assert "2 ioctls share this number" in out


def test_decode_decimal_and_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "decode", "15232")  # 0x3b80
    assert code == 0 and "IOMMU_DESTROY" in out and "iommufd fd" in out
    code, out, _ = run(capsys, "decode", "iommu_ioas_map_file")
    assert code == 0 and out.startswith("0x3b8f") and "struct iommu_ioas_map_file" in out


@pytest.mark.parametrize(
    "arg, message",
    [
        ("0x1234", "no VFIO or iommufd ioctl has request number 0x1234"),
        ("0xc0183b71", "plain _IO with no size bits -- did you mean 0x3b71?"),
        ("0x1ffffffff", "not a 32-bit ioctl request number"),
        ("12abc", "neither an ioctl name nor a number"),
        ("VFIO_IOMMU_MAP_DNA", "did you mean VFIO_IOMMU_MAP_DMA"),
    ],
)
def test_decode_bad_input(capsys: pytest.CaptureFixture[str], arg: str, message: str) -> None:
    code, _, err = run(capsys, "decode", arg)
    assert code == 2
    assert message in err


def test_abi_layout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "abi", "vfio_region_info")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "struct vfio_region_info: sizeof 32, alignof 8"
    assert any(line.split() == ["16", "8", "size", "__u64"] for line in lines)
    assert any(line.split() == ["12", "4", "cap_offset", "__u32"] for line in lines)


def test_abi_flex_union_and_padding(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "abi", "struct vfio_region_info_cap_sparse_mmap")
    assert code == 0 and "(flexible array)" in out and "struct vfio_region_sparse_mmap_area[]" in out
    code, out, _ = run(capsys, "abi", "vfio_pci_dependent_device")
    assert code == 0 and "(anonymous)" in out and "group_id" in out and "devid" in out
    code, out, _ = run(capsys, "abi", "--list")
    assert code == 0 and len(out.splitlines()) == 90


def test_abi_unknown_struct(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "abi", "vfio_region_inf")
    assert code == 2 and "did you mean vfio_region_info" in err
    code, _, err = run(capsys, "abi", "nothing_like_it_at_all")
    assert code == 2 and "--list" in err


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "pyvfio", "decode", "0x3b64"], capture_output=True, text=True)
    assert proc.returncode == 0 and "VFIO_GET_API_VERSION" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "pyvfio", "nonsense"], capture_output=True, text=True)
    assert proc.returncode == 2
