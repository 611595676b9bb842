"""Generated from pyvfio.uapi.iommufd by tools/gen_stubs.py: do not edit."""

import ctypes
import enum

from pyvfio.uapi.ioctl import IoctlDef
from pyvfio.uapi.struct import Struct, Union

IOMMUFD_TYPE: int
IOMMUFD_CMD_BASE: int
IOMMUFD_CMD_DESTROY: int
IOMMUFD_CMD_IOAS_ALLOC: int
IOMMUFD_CMD_IOAS_ALLOW_IOVAS: int
IOMMUFD_CMD_IOAS_COPY: int
IOMMUFD_CMD_IOAS_IOVA_RANGES: int
IOMMUFD_CMD_IOAS_MAP: int
IOMMUFD_CMD_IOAS_UNMAP: int
IOMMUFD_CMD_OPTION: int
IOMMUFD_CMD_VFIO_IOAS: int
IOMMUFD_CMD_HWPT_ALLOC: int
IOMMUFD_CMD_GET_HW_INFO: int
IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING: int
IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP: int
IOMMUFD_CMD_HWPT_INVALIDATE: int
IOMMUFD_CMD_FAULT_QUEUE_ALLOC: int
IOMMUFD_CMD_IOAS_MAP_FILE: int
IOMMUFD_CMD_VIOMMU_ALLOC: int
IOMMUFD_CMD_VDEVICE_ALLOC: int
IOMMUFD_CMD_IOAS_CHANGE_PROCESS: int
IOMMUFD_CMD_VEVENTQ_ALLOC: int
IOMMUFD_CMD_HW_QUEUE_ALLOC: int
IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA: int
class iommu_destroy(Struct):
    size: int
    id: int
    def __init__(self, size: int = ..., id: int = ...) -> None: ...

IOMMU_DESTROY: int
class iommu_ioas_alloc(Struct):
    size: int
    flags: int
    out_ioas_id: int
    def __init__(self, size: int = ..., flags: int = ..., out_ioas_id: int = ...) -> None: ...

IOMMU_IOAS_ALLOC: int
class iommu_iova_range(Struct):
    start: int
    last: int
    def __init__(self, start: int = ..., last: int = ...) -> None: ...

class iommu_ioas_iova_ranges(Struct):
    size: int
    ioas_id: int
    num_iovas: int
    allowed_iovas: int
    out_iova_alignment: int
    def __init__(self, size: int = ..., ioas_id: int = ..., num_iovas: int = ..., allowed_iovas: int = ..., out_iova_alignment: int = ...) -> None: ...

IOMMU_IOAS_IOVA_RANGES: int
class iommu_ioas_allow_iovas(Struct):
    size: int
    ioas_id: int
    num_iovas: int
    allowed_iovas: int
    def __init__(self, size: int = ..., ioas_id: int = ..., num_iovas: int = ..., allowed_iovas: int = ...) -> None: ...

IOMMU_IOAS_ALLOW_IOVAS: int
IOMMU_IOAS_MAP_FIXED_IOVA: int
IOMMU_IOAS_MAP_WRITEABLE: int
IOMMU_IOAS_MAP_READABLE: int
class iommufd_ioas_map_flags(enum.IntFlag):
    IOMMU_IOAS_MAP_FIXED_IOVA = 1
    IOMMU_IOAS_MAP_WRITEABLE = 2
    IOMMU_IOAS_MAP_READABLE = 4

class IommuIoasMapFlags(enum.IntFlag):
    FIXED_IOVA = 1
    WRITEABLE = 2
    READABLE = 4

class iommu_ioas_map(Struct):
    size: int
    flags: int
    ioas_id: int
    user_va: int
    length: int
    iova: int
    def __init__(self, size: int = ..., flags: int = ..., ioas_id: int = ..., user_va: int = ..., length: int = ..., iova: int = ...) -> None: ...

IOMMU_IOAS_MAP: int
class iommu_ioas_noiommu_get_pa(Struct):
    size: int
    flags: int
    ioas_id: int
    iova: int
    length: int
    out_phys: int
    def __init__(self, size: int = ..., flags: int = ..., ioas_id: int = ..., iova: int = ..., length: int = ..., out_phys: int = ...) -> None: ...

IOMMU_IOAS_NOIOMMU_GET_PA: int
class iommu_ioas_map_file(Struct):
    size: int
    flags: int
    ioas_id: int
    fd: int
    start: int
    length: int
    iova: int
    def __init__(self, size: int = ..., flags: int = ..., ioas_id: int = ..., fd: int = ..., start: int = ..., length: int = ..., iova: int = ...) -> None: ...

IOMMU_IOAS_MAP_FILE: int
class iommu_ioas_copy(Struct):
    size: int
    flags: int
    dst_ioas_id: int
    src_ioas_id: int
    length: int
    dst_iova: int
    src_iova: int
    def __init__(self, size: int = ..., flags: int = ..., dst_ioas_id: int = ..., src_ioas_id: int = ..., length: int = ..., dst_iova: int = ..., src_iova: int = ...) -> None: ...

IOMMU_IOAS_COPY: int
class iommu_ioas_unmap(Struct):
    size: int
    ioas_id: int
    iova: int
    length: int
    def __init__(self, size: int = ..., ioas_id: int = ..., iova: int = ..., length: int = ...) -> None: ...

IOMMU_IOAS_UNMAP: int
IOMMU_OPTION_RLIMIT_MODE: int
IOMMU_OPTION_HUGE_PAGES: int
class iommufd_option(enum.IntEnum):
    IOMMU_OPTION_RLIMIT_MODE = 0
    IOMMU_OPTION_HUGE_PAGES = 1

IOMMU_OPTION_OP_SET: int
IOMMU_OPTION_OP_GET: int
class iommufd_option_ops(enum.IntEnum):
    IOMMU_OPTION_OP_SET = 0
    IOMMU_OPTION_OP_GET = 1

class iommu_option(Struct):
    size: int
    option_id: int
    op: int
    object_id: int
    val64: int
    def __init__(self, size: int = ..., option_id: int = ..., op: int = ..., object_id: int = ..., val64: int = ...) -> None: ...

IOMMU_OPTION: int
IOMMU_VFIO_IOAS_GET: int
IOMMU_VFIO_IOAS_SET: int
IOMMU_VFIO_IOAS_CLEAR: int
class iommufd_vfio_ioas_op(enum.IntEnum):
    IOMMU_VFIO_IOAS_GET = 0
    IOMMU_VFIO_IOAS_SET = 1
    IOMMU_VFIO_IOAS_CLEAR = 2

class iommu_vfio_ioas(Struct):
    size: int
    ioas_id: int
    op: int
    def __init__(self, size: int = ..., ioas_id: int = ..., op: int = ...) -> None: ...

IOMMU_VFIO_IOAS: int
IOMMU_HWPT_ALLOC_NEST_PARENT: int
IOMMU_HWPT_ALLOC_DIRTY_TRACKING: int
IOMMU_HWPT_FAULT_ID_VALID: int
IOMMU_HWPT_ALLOC_PASID: int
class iommufd_hwpt_alloc_flags(enum.IntFlag):
    IOMMU_HWPT_ALLOC_NEST_PARENT = 1
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 2
    IOMMU_HWPT_FAULT_ID_VALID = 4
    IOMMU_HWPT_ALLOC_PASID = 8

class IommuHwptAllocFlags(enum.IntFlag):
    NEST_PARENT = 1
    DIRTY_TRACKING = 2
    FAULT_ID_VALID = 4
    PASID = 8

IOMMU_VTD_S1_SRE: int
IOMMU_VTD_S1_EAFE: int
IOMMU_VTD_S1_WPE: int
class iommu_hwpt_vtd_s1_flags(enum.IntFlag):
    IOMMU_VTD_S1_SRE = 1
    IOMMU_VTD_S1_EAFE = 2
    IOMMU_VTD_S1_WPE = 4

class IommuHwptVtdS1Flags(enum.IntFlag):
    SRE = 1
    EAFE = 2
    WPE = 4

class iommu_hwpt_vtd_s1(Struct):
    flags: int
    pgtbl_addr: int
    addr_width: int
    def __init__(self, flags: int = ..., pgtbl_addr: int = ..., addr_width: int = ...) -> None: ...

class iommu_hwpt_arm_smmuv3(Struct):
    ste: ctypes.Array[ctypes.c_ulong]
    def __init__(self, ste: ctypes.Array[ctypes.c_ulong] = ...) -> None: ...

class iommu_hwpt_amd_guest(Struct):
    dte: ctypes.Array[ctypes.c_ulong]
    def __init__(self, dte: ctypes.Array[ctypes.c_ulong] = ...) -> None: ...

IOMMU_HWPT_DATA_NONE: int
IOMMU_HWPT_DATA_VTD_S1: int
IOMMU_HWPT_DATA_ARM_SMMUV3: int
IOMMU_HWPT_DATA_AMD_GUEST: int
class iommu_hwpt_data_type(enum.IntEnum):
    IOMMU_HWPT_DATA_NONE = 0
    IOMMU_HWPT_DATA_VTD_S1 = 1
    IOMMU_HWPT_DATA_ARM_SMMUV3 = 2
    IOMMU_HWPT_DATA_AMD_GUEST = 3

class iommu_hwpt_alloc(Struct):
    size: int
    flags: int
    dev_id: int
    pt_id: int
    out_hwpt_id: int
    data_type: int
    data_len: int
    data_uptr: int
    fault_id: int
    def __init__(self, size: int = ..., flags: int = ..., dev_id: int = ..., pt_id: int = ..., out_hwpt_id: int = ..., data_type: int = ..., data_len: int = ..., data_uptr: int = ..., fault_id: int = ...) -> None: ...

IOMMU_HWPT_ALLOC: int
IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17: int
class iommu_hw_info_vtd_flags(enum.IntFlag):
    IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1

class IommuHwInfoVtdFlags(enum.IntFlag):
    ERRATA_772415_SPR17 = 1

class iommu_hw_info_vtd(Struct):
    flags: int
    cap_reg: int
    ecap_reg: int
    def __init__(self, flags: int = ..., cap_reg: int = ..., ecap_reg: int = ...) -> None: ...

IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI: int
class iommu_hw_info_arm_smmuv3_flags(enum.IntFlag):
    IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI = 1

class IommuHwInfoArmSmmuv3Flags(enum.IntFlag):
    ERRATA_REPEAT_TLBI_CFGI = 1

class iommu_hw_info_arm_smmuv3(Struct):
    flags: int
    idr: ctypes.Array[ctypes.c_uint]
    iidr: int
    aidr: int
    def __init__(self, flags: int = ..., idr: ctypes.Array[ctypes.c_uint] = ..., iidr: int = ..., aidr: int = ...) -> None: ...

class iommu_hw_info_tegra241_cmdqv(Struct):
    flags: int
    version: int
    log2vcmdqs: int
    log2vsids: int
    def __init__(self, flags: int = ..., version: int = ..., log2vcmdqs: int = ..., log2vsids: int = ...) -> None: ...

class iommu_hw_info_amd(Struct):
    efr: int
    efr2: int
    def __init__(self, efr: int = ..., efr2: int = ...) -> None: ...

IOMMU_HW_INFO_TYPE_NONE: int
IOMMU_HW_INFO_TYPE_DEFAULT: int
IOMMU_HW_INFO_TYPE_INTEL_VTD: int
IOMMU_HW_INFO_TYPE_ARM_SMMUV3: int
IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV: int
IOMMU_HW_INFO_TYPE_AMD: int
class iommu_hw_info_type(enum.IntEnum):
    IOMMU_HW_INFO_TYPE_NONE = 0
    IOMMU_HW_INFO_TYPE_INTEL_VTD = 1
    IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2
    IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3
    IOMMU_HW_INFO_TYPE_AMD = 4

IOMMU_HW_CAP_DIRTY_TRACKING: int
IOMMU_HW_CAP_PCI_PASID_EXEC: int
IOMMU_HW_CAP_PCI_PASID_PRIV: int
IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED: int
class iommufd_hw_capabilities(enum.IntFlag):
    IOMMU_HW_CAP_DIRTY_TRACKING = 1
    IOMMU_HW_CAP_PCI_PASID_EXEC = 2
    IOMMU_HW_CAP_PCI_PASID_PRIV = 4
    IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 8

class IommuHwCapabilities(enum.IntFlag):
    DIRTY_TRACKING = 1
    PCI_PASID_EXEC = 2
    PCI_PASID_PRIV = 4
    PCI_ATS_NOT_SUPPORTED = 8

IOMMU_HW_INFO_FLAG_INPUT_TYPE: int
class iommufd_hw_info_flags(enum.IntFlag):
    IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1

class IommuHwInfoFlags(enum.IntFlag):
    INPUT_TYPE = 1

class _iommu_hw_info_data_type(Union):
    in_data_type: int
    out_data_type: int
    def __init__(self, in_data_type: int = ..., out_data_type: int = ...) -> None: ...

class iommu_hw_info(Struct):
    size: int
    flags: int
    dev_id: int
    data_len: int
    data_uptr: int
    _data_type: _iommu_hw_info_data_type
    in_data_type: int
    out_data_type: int
    out_max_pasid_log2: int
    out_capabilities: int
    def __init__(self, size: int = ..., flags: int = ..., dev_id: int = ..., data_len: int = ..., data_uptr: int = ..., out_max_pasid_log2: int = ..., out_capabilities: int = ...) -> None: ...

IOMMU_GET_HW_INFO: int
IOMMU_HWPT_DIRTY_TRACKING_ENABLE: int
class iommufd_hwpt_set_dirty_tracking_flags(enum.IntFlag):
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1

class IommuHwptSetDirtyTrackingFlags(enum.IntFlag):
    ENABLE = 1

class iommu_hwpt_set_dirty_tracking(Struct):
    size: int
    flags: int
    hwpt_id: int
    def __init__(self, size: int = ..., flags: int = ..., hwpt_id: int = ...) -> None: ...

IOMMU_HWPT_SET_DIRTY_TRACKING: int
IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: int
class iommufd_hwpt_get_dirty_bitmap_flags(enum.IntFlag):
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1

class IommuHwptGetDirtyBitmapFlags(enum.IntFlag):
    NO_CLEAR = 1

class iommu_hwpt_get_dirty_bitmap(Struct):
    size: int
    hwpt_id: int
    flags: int
    iova: int
    length: int
    page_size: int
    data: int
    def __init__(self, size: int = ..., hwpt_id: int = ..., flags: int = ..., iova: int = ..., length: int = ..., page_size: int = ..., data: int = ...) -> None: ...

IOMMU_HWPT_GET_DIRTY_BITMAP: int
IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: int
IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: int
class iommu_hwpt_invalidate_data_type(enum.IntEnum):
    IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0
    IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1

IOMMU_VTD_INV_FLAGS_LEAF: int
class iommu_hwpt_vtd_s1_invalidate_flags(enum.IntFlag):
    IOMMU_VTD_INV_FLAGS_LEAF = 1

class IommuHwptVtdS1InvalidateFlags(enum.IntFlag):
    LEAF = 1

class iommu_hwpt_vtd_s1_invalidate(Struct):
    addr: int
    npages: int
    flags: int
    def __init__(self, addr: int = ..., npages: int = ..., flags: int = ...) -> None: ...

class iommu_viommu_arm_smmuv3_invalidate(Struct):
    cmd: ctypes.Array[ctypes.c_ulong]
    def __init__(self, cmd: ctypes.Array[ctypes.c_ulong] = ...) -> None: ...

class iommu_hwpt_invalidate(Struct):
    size: int
    hwpt_id: int
    data_uptr: int
    data_type: int
    entry_len: int
    entry_num: int
    def __init__(self, size: int = ..., hwpt_id: int = ..., data_uptr: int = ..., data_type: int = ..., entry_len: int = ..., entry_num: int = ...) -> None: ...

IOMMU_HWPT_INVALIDATE: int
IOMMU_PGFAULT_FLAGS_PASID_VALID: int
IOMMU_PGFAULT_FLAGS_LAST_PAGE: int
class iommu_hwpt_pgfault_flags(enum.IntFlag):
    IOMMU_PGFAULT_FLAGS_PASID_VALID = 1
    IOMMU_PGFAULT_FLAGS_LAST_PAGE = 2

class IommuPgfaultFlags(enum.IntFlag):
    PASID_VALID = 1
    LAST_PAGE = 2

IOMMU_PGFAULT_PERM_READ: int
IOMMU_PGFAULT_PERM_WRITE: int
IOMMU_PGFAULT_PERM_EXEC: int
IOMMU_PGFAULT_PERM_PRIV: int
class iommu_hwpt_pgfault_perm(enum.IntFlag):
    IOMMU_PGFAULT_PERM_READ = 1
    IOMMU_PGFAULT_PERM_WRITE = 2
    IOMMU_PGFAULT_PERM_EXEC = 4
    IOMMU_PGFAULT_PERM_PRIV = 8

class IommuPgfaultPerm(enum.IntFlag):
    READ = 1
    WRITE = 2
    EXEC = 4
    PRIV = 8

class iommu_hwpt_pgfault(Struct):
    flags: int
    dev_id: int
    pasid: int
    grpid: int
    perm: int
    addr: int
    length: int
    cookie: int
    def __init__(self, flags: int = ..., dev_id: int = ..., pasid: int = ..., grpid: int = ..., perm: int = ..., addr: int = ..., length: int = ..., cookie: int = ...) -> None: ...

IOMMUFD_PAGE_RESP_SUCCESS: int
IOMMUFD_PAGE_RESP_INVALID: int
class iommufd_page_response_code(enum.IntEnum):
    IOMMUFD_PAGE_RESP_SUCCESS = 0
    IOMMUFD_PAGE_RESP_INVALID = 1

class iommu_hwpt_page_response(Struct):
    cookie: int
    code: int
    def __init__(self, cookie: int = ..., code: int = ...) -> None: ...

class iommu_fault_alloc(Struct):
    size: int
    flags: int
    out_fault_id: int
    out_fault_fd: int
    def __init__(self, size: int = ..., flags: int = ..., out_fault_id: int = ..., out_fault_fd: int = ...) -> None: ...

IOMMU_FAULT_QUEUE_ALLOC: int
IOMMU_VIOMMU_TYPE_DEFAULT: int
IOMMU_VIOMMU_TYPE_ARM_SMMUV3: int
IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV: int
class iommu_viommu_type(enum.IntEnum):
    IOMMU_VIOMMU_TYPE_DEFAULT = 0
    IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1
    IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2

class iommu_viommu_tegra241_cmdqv(Struct):
    out_vintf_mmap_offset: int
    out_vintf_mmap_length: int
    def __init__(self, out_vintf_mmap_offset: int = ..., out_vintf_mmap_length: int = ...) -> None: ...

class iommu_viommu_alloc(Struct):
    size: int
    flags: int
    type: int
    dev_id: int
    hwpt_id: int
    out_viommu_id: int
    data_len: int
    data_uptr: int
    def __init__(self, size: int = ..., flags: int = ..., type: int = ..., dev_id: int = ..., hwpt_id: int = ..., out_viommu_id: int = ..., data_len: int = ..., data_uptr: int = ...) -> None: ...

IOMMU_VIOMMU_ALLOC: int
class iommu_vdevice_alloc(Struct):
    size: int
    viommu_id: int
    dev_id: int
    out_vdevice_id: int
    virt_id: int
    def __init__(self, size: int = ..., viommu_id: int = ..., dev_id: int = ..., out_vdevice_id: int = ..., virt_id: int = ...) -> None: ...

IOMMU_VDEVICE_ALLOC: int
class iommu_ioas_change_process(Struct):
    size: int
    def __init__(self, size: int = ...) -> None: ...

IOMMU_IOAS_CHANGE_PROCESS: int
IOMMU_VEVENTQ_FLAG_LOST_EVENTS: int
class iommu_veventq_flag(enum.IntFlag):
    IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1

class IommuVeventqFlags(enum.IntFlag):
    LOST_EVENTS = 1

class iommufd_vevent_header(Struct):
    flags: int
    sequence: int
    def __init__(self, flags: int = ..., sequence: int = ...) -> None: ...

IOMMU_VEVENTQ_TYPE_DEFAULT: int
IOMMU_VEVENTQ_TYPE_ARM_SMMUV3: int
IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV: int
class iommu_veventq_type(enum.IntEnum):
    IOMMU_VEVENTQ_TYPE_DEFAULT = 0
    IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1
    IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2

class iommu_vevent_arm_smmuv3(Struct):
    evt: ctypes.Array[ctypes.c_ulong]
    def __init__(self, evt: ctypes.Array[ctypes.c_ulong] = ...) -> None: ...

class iommu_vevent_tegra241_cmdqv(Struct):
    lvcmdq_err_map: ctypes.Array[ctypes.c_ulong]
    def __init__(self, lvcmdq_err_map: ctypes.Array[ctypes.c_ulong] = ...) -> None: ...

class iommu_veventq_alloc(Struct):
    size: int
    flags: int
    viommu_id: int
    type: int
    veventq_depth: int
    out_veventq_id: int
    out_veventq_fd: int
    def __init__(self, size: int = ..., flags: int = ..., viommu_id: int = ..., type: int = ..., veventq_depth: int = ..., out_veventq_id: int = ..., out_veventq_fd: int = ...) -> None: ...

IOMMU_VEVENTQ_ALLOC: int
IOMMU_HW_QUEUE_TYPE_DEFAULT: int
IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV: int
class iommu_hw_queue_type(enum.IntEnum):
    IOMMU_HW_QUEUE_TYPE_DEFAULT = 0
    IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1

class iommu_hw_queue_alloc(Struct):
    size: int
    flags: int
    viommu_id: int
    type: int
    index: int
    out_hw_queue_id: int
    nesting_parent_iova: int
    length: int
    def __init__(self, size: int = ..., flags: int = ..., viommu_id: int = ..., type: int = ..., index: int = ..., out_hw_queue_id: int = ..., nesting_parent_iova: int = ..., length: int = ...) -> None: ...

IOMMU_HW_QUEUE_ALLOC: int

IOCTLS: tuple[IoctlDef, ...]
STRUCTS: tuple[type[Struct] | type[Union], ...]
