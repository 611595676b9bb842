"""Generated from pyvfio.uapi.vfio by tools/gen_stubs.py: do not edit."""

import ctypes
import enum

from pyvfio.uapi.ioctl import IoctlDef
from pyvfio.uapi.struct import Struct, Union

VFIO_API_VERSION: int
VFIO_TYPE1_IOMMU: int
VFIO_SPAPR_TCE_IOMMU: int
VFIO_TYPE1v2_IOMMU: int
VFIO_DMA_CC_IOMMU: int
VFIO_EEH: int
__VFIO_RESERVED_TYPE1_NESTING_IOMMU: int
VFIO_SPAPR_TCE_v2_IOMMU: int
VFIO_NOIOMMU_IOMMU: int
VFIO_UNMAP_ALL: int
VFIO_UPDATE_VADDR: int
class VfioExtension(enum.IntEnum):
    TYPE1_IOMMU = 1
    SPAPR_TCE_IOMMU = 2
    TYPE1v2_IOMMU = 3
    DMA_CC_IOMMU = 4
    EEH = 5
    RESERVED_TYPE1_NESTING_IOMMU = 6
    SPAPR_TCE_v2_IOMMU = 7
    NOIOMMU_IOMMU = 8
    UNMAP_ALL = 9
    UPDATE_VADDR = 10

VFIO_TYPE: int
VFIO_BASE: int
class vfio_info_cap_header(Struct):
    id: int
    version: int
    next: int
    def __init__(self, id: int = ..., version: int = ..., next: int = ...) -> None: ...

VFIO_GET_API_VERSION: int
VFIO_CHECK_EXTENSION: int
VFIO_SET_IOMMU: int
class vfio_group_status(Struct):
    argsz: int
    flags: int
    def __init__(self, argsz: int = ..., flags: int = ...) -> None: ...

VFIO_GROUP_FLAGS_VIABLE: int
VFIO_GROUP_FLAGS_CONTAINER_SET: int
VFIO_GROUP_GET_STATUS: int
class VfioGroupFlag(enum.IntFlag):
    VIABLE = 1
    CONTAINER_SET = 2

VFIO_GROUP_SET_CONTAINER: int
VFIO_GROUP_UNSET_CONTAINER: int
VFIO_GROUP_GET_DEVICE_FD: int
class vfio_device_info(Struct):
    argsz: int
    flags: int
    num_regions: int
    num_irqs: int
    cap_offset: int
    pad: int
    def __init__(self, argsz: int = ..., flags: int = ..., num_regions: int = ..., num_irqs: int = ..., cap_offset: int = ..., pad: int = ...) -> None: ...

VFIO_DEVICE_FLAGS_RESET: int
VFIO_DEVICE_FLAGS_PCI: int
VFIO_DEVICE_FLAGS_PLATFORM: int
VFIO_DEVICE_FLAGS_AMBA: int
VFIO_DEVICE_FLAGS_CCW: int
VFIO_DEVICE_FLAGS_AP: int
VFIO_DEVICE_FLAGS_FSL_MC: int
VFIO_DEVICE_FLAGS_CAPS: int
VFIO_DEVICE_FLAGS_CDX: int
VFIO_DEVICE_GET_INFO: int
class VfioDeviceFlag(enum.IntFlag):
    RESET = 1
    PCI = 2
    PLATFORM = 4
    AMBA = 8
    CCW = 16
    AP = 32
    FSL_MC = 64
    CAPS = 128
    CDX = 256

VFIO_DEVICE_API_PCI_STRING: str
VFIO_DEVICE_API_PLATFORM_STRING: str
VFIO_DEVICE_API_AMBA_STRING: str
VFIO_DEVICE_API_CCW_STRING: str
VFIO_DEVICE_API_AP_STRING: str
VFIO_DEVICE_INFO_CAP_ZPCI_BASE: int
VFIO_DEVICE_INFO_CAP_ZPCI_GROUP: int
VFIO_DEVICE_INFO_CAP_ZPCI_UTIL: int
VFIO_DEVICE_INFO_CAP_ZPCI_PFIP: int
VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP: int
class vfio_device_info_cap_pci_atomic_comp(Struct):
    header: vfio_info_cap_header
    flags: int
    reserved: int
    def __init__(self, header: vfio_info_cap_header = ..., flags: int = ..., reserved: int = ...) -> None: ...

VFIO_PCI_ATOMIC_COMP32: int
VFIO_PCI_ATOMIC_COMP64: int
VFIO_PCI_ATOMIC_COMP128: int
class VfioDeviceInfoCap(enum.IntEnum):
    ZPCI_BASE = 1
    ZPCI_GROUP = 2
    ZPCI_UTIL = 3
    ZPCI_PFIP = 4
    PCI_ATOMIC_COMP = 5

class VfioPciAtomicComp(enum.IntFlag):
    COMP32 = 1
    COMP64 = 2
    COMP128 = 4

class vfio_region_info(Struct):
    argsz: int
    flags: int
    index: int
    cap_offset: int
    size: int
    offset: int
    def __init__(self, argsz: int = ..., flags: int = ..., index: int = ..., cap_offset: int = ..., size: int = ..., offset: int = ...) -> None: ...

VFIO_REGION_INFO_FLAG_READ: int
VFIO_REGION_INFO_FLAG_WRITE: int
VFIO_REGION_INFO_FLAG_MMAP: int
VFIO_REGION_INFO_FLAG_CAPS: int
VFIO_DEVICE_GET_REGION_INFO: int
class VfioRegionInfoFlag(enum.IntFlag):
    READ = 1
    WRITE = 2
    MMAP = 4
    CAPS = 8

VFIO_REGION_INFO_CAP_SPARSE_MMAP: int
class vfio_region_sparse_mmap_area(Struct):
    offset: int
    size: int
    def __init__(self, offset: int = ..., size: int = ...) -> None: ...

class vfio_region_info_cap_sparse_mmap(Struct):
    header: vfio_info_cap_header
    nr_areas: int
    reserved: int
    areas: ctypes.Array[vfio_region_sparse_mmap_area]
    def __init__(self, header: vfio_info_cap_header = ..., nr_areas: int = ..., reserved: int = ..., areas: ctypes.Array[vfio_region_sparse_mmap_area] = ...) -> None: ...

VFIO_REGION_INFO_CAP_TYPE: int
class vfio_region_info_cap_type(Struct):
    header: vfio_info_cap_header
    type: int
    subtype: int
    def __init__(self, header: vfio_info_cap_header = ..., type: int = ..., subtype: int = ...) -> None: ...

VFIO_REGION_TYPE_PCI_VENDOR_TYPE: int
VFIO_REGION_TYPE_PCI_VENDOR_MASK: int
VFIO_REGION_TYPE_GFX: int
VFIO_REGION_TYPE_CCW: int
VFIO_REGION_TYPE_MIGRATION_DEPRECATED: int
VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION: int
VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG: int
VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG: int
VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM: int
VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD: int
VFIO_REGION_SUBTYPE_GFX_EDID: int
class vfio_region_gfx_edid(Struct):
    edid_offset: int
    edid_max_size: int
    edid_size: int
    max_xres: int
    max_yres: int
    link_state: int
    def __init__(self, edid_offset: int = ..., edid_max_size: int = ..., edid_size: int = ..., max_xres: int = ..., max_yres: int = ..., link_state: int = ...) -> None: ...

VFIO_DEVICE_GFX_LINK_STATE_UP: int
VFIO_DEVICE_GFX_LINK_STATE_DOWN: int
VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD: int
VFIO_REGION_SUBTYPE_CCW_SCHIB: int
VFIO_REGION_SUBTYPE_CCW_CRW: int
VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED: int
class vfio_device_migration_info(Struct):
    device_state: int
    reserved: int
    pending_bytes: int
    data_offset: int
    data_size: int
    def __init__(self, device_state: int = ..., reserved: int = ..., pending_bytes: int = ..., data_offset: int = ..., data_size: int = ...) -> None: ...

VFIO_DEVICE_STATE_V1_STOP: int
VFIO_DEVICE_STATE_V1_RUNNING: int
VFIO_DEVICE_STATE_V1_SAVING: int
VFIO_DEVICE_STATE_V1_RESUMING: int
VFIO_DEVICE_STATE_MASK: int
def VFIO_DEVICE_STATE_VALID(state: int) -> bool: ...
def VFIO_DEVICE_STATE_IS_ERROR(state: int) -> bool: ...
def VFIO_DEVICE_STATE_SET_ERROR(state: int) -> int: ...
class VfioDeviceStateV1(enum.IntFlag):
    RUNNING = 1
    SAVING = 2
    RESUMING = 4

VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: int
VFIO_REGION_INFO_CAP_NVLINK2_SSATGT: int
class vfio_region_info_cap_nvlink2_ssatgt(Struct):
    header: vfio_info_cap_header
    tgt: int
    def __init__(self, header: vfio_info_cap_header = ..., tgt: int = ...) -> None: ...

VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD: int
class vfio_region_info_cap_nvlink2_lnkspd(Struct):
    header: vfio_info_cap_header
    link_speed: int
    def __init__(self, header: vfio_info_cap_header = ..., link_speed: int = ...) -> None: ...

class VfioRegionInfoCap(enum.IntEnum):
    SPARSE_MMAP = 1
    TYPE = 2
    MSIX_MAPPABLE = 3
    NVLINK2_SSATGT = 4
    NVLINK2_LNKSPD = 5

class vfio_irq_info(Struct):
    argsz: int
    flags: int
    index: int
    count: int
    def __init__(self, argsz: int = ..., flags: int = ..., index: int = ..., count: int = ...) -> None: ...

VFIO_IRQ_INFO_EVENTFD: int
VFIO_IRQ_INFO_MASKABLE: int
VFIO_IRQ_INFO_AUTOMASKED: int
VFIO_IRQ_INFO_NORESIZE: int
VFIO_DEVICE_GET_IRQ_INFO: int
class VfioIrqInfoFlag(enum.IntFlag):
    EVENTFD = 1
    MASKABLE = 2
    AUTOMASKED = 4
    NORESIZE = 8

class vfio_irq_set(Struct):
    argsz: int
    flags: int
    index: int
    start: int
    count: int
    data: ctypes.Array[ctypes.c_ubyte]
    def __init__(self, argsz: int = ..., flags: int = ..., index: int = ..., start: int = ..., count: int = ..., data: ctypes.Array[ctypes.c_ubyte] = ...) -> None: ...

VFIO_IRQ_SET_DATA_NONE: int
VFIO_IRQ_SET_DATA_BOOL: int
VFIO_IRQ_SET_DATA_EVENTFD: int
VFIO_IRQ_SET_ACTION_MASK: int
VFIO_IRQ_SET_ACTION_UNMASK: int
VFIO_IRQ_SET_ACTION_TRIGGER: int
VFIO_DEVICE_SET_IRQS: int
VFIO_IRQ_SET_DATA_TYPE_MASK: int
VFIO_IRQ_SET_ACTION_TYPE_MASK: int
class VfioIrqSetFlag(enum.IntFlag):
    DATA_NONE = 1
    DATA_BOOL = 2
    DATA_EVENTFD = 4
    ACTION_MASK = 8
    ACTION_UNMASK = 16
    ACTION_TRIGGER = 32

VFIO_DEVICE_RESET: int
VFIO_PCI_BAR0_REGION_INDEX: int
VFIO_PCI_BAR1_REGION_INDEX: int
VFIO_PCI_BAR2_REGION_INDEX: int
VFIO_PCI_BAR3_REGION_INDEX: int
VFIO_PCI_BAR4_REGION_INDEX: int
VFIO_PCI_BAR5_REGION_INDEX: int
VFIO_PCI_ROM_REGION_INDEX: int
VFIO_PCI_CONFIG_REGION_INDEX: int
VFIO_PCI_VGA_REGION_INDEX: int
VFIO_PCI_NUM_REGIONS: int
VFIO_PCI_INTX_IRQ_INDEX: int
VFIO_PCI_MSI_IRQ_INDEX: int
VFIO_PCI_MSIX_IRQ_INDEX: int
VFIO_PCI_ERR_IRQ_INDEX: int
VFIO_PCI_REQ_IRQ_INDEX: int
VFIO_PCI_NUM_IRQS: int
VFIO_CCW_CONFIG_REGION_INDEX: int
VFIO_CCW_NUM_REGIONS: int
VFIO_CCW_IO_IRQ_INDEX: int
VFIO_CCW_CRW_IRQ_INDEX: int
VFIO_CCW_REQ_IRQ_INDEX: int
VFIO_CCW_NUM_IRQS: int
VFIO_AP_REQ_IRQ_INDEX: int
VFIO_AP_CFG_CHG_IRQ_INDEX: int
VFIO_AP_NUM_IRQS: int
class VfioPciRegionIndex(enum.IntEnum):
    BAR0 = 0
    BAR1 = 1
    BAR2 = 2
    BAR3 = 3
    BAR4 = 4
    BAR5 = 5
    ROM = 6
    CONFIG = 7
    VGA = 8

class VfioPciIrqIndex(enum.IntEnum):
    INTX = 0
    MSI = 1
    MSIX = 2
    ERR = 3
    REQ = 4

class VfioCcwRegionIndex(enum.IntEnum):
    CONFIG = 0

class VfioCcwIrqIndex(enum.IntEnum):
    IO = 0
    CRW = 1
    REQ = 2

class VfioApIrqIndex(enum.IntEnum):
    REQ = 0
    CFG_CHG = 1

class _vfio_pci_dependent_device_u(Union):
    group_id: int
    devid: int
    def __init__(self, group_id: int = ..., devid: int = ...) -> None: ...

class vfio_pci_dependent_device(Struct):
    _u: _vfio_pci_dependent_device_u
    group_id: int
    devid: int
    segment: int
    bus: int
    devfn: int
    def __init__(self, segment: int = ..., bus: int = ..., devfn: int = ...) -> None: ...

VFIO_PCI_DEVID_OWNED: int
VFIO_PCI_DEVID_NOT_OWNED: int
class vfio_pci_hot_reset_info(Struct):
    argsz: int
    flags: int
    count: int
    devices: ctypes.Array[vfio_pci_dependent_device]
    def __init__(self, argsz: int = ..., flags: int = ..., count: int = ..., devices: ctypes.Array[vfio_pci_dependent_device] = ...) -> None: ...

VFIO_PCI_HOT_RESET_FLAG_DEV_ID: int
VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: int
VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: int
class VfioPciHotResetFlag(enum.IntFlag):
    DEV_ID = 1
    DEV_ID_OWNED = 2

class vfio_pci_hot_reset(Struct):
    argsz: int
    flags: int
    count: int
    group_fds: ctypes.Array[ctypes.c_int]
    def __init__(self, argsz: int = ..., flags: int = ..., count: int = ..., group_fds: ctypes.Array[ctypes.c_int] = ...) -> None: ...

VFIO_DEVICE_PCI_HOT_RESET: int
class _vfio_device_gfx_plane_info_u(Union):
    region_index: int
    dmabuf_id: int
    def __init__(self, region_index: int = ..., dmabuf_id: int = ...) -> None: ...

class vfio_device_gfx_plane_info(Struct):
    argsz: int
    flags: int
    drm_plane_type: int
    drm_format: int
    drm_format_mod: int
    width: int
    height: int
    stride: int
    size: int
    x_pos: int
    y_pos: int
    x_hot: int
    y_hot: int
    _u: _vfio_device_gfx_plane_info_u
    region_index: int
    dmabuf_id: int
    reserved: int
    def __init__(self, argsz: int = ..., flags: int = ..., drm_plane_type: int = ..., drm_format: int = ..., drm_format_mod: int = ..., width: int = ..., height: int = ..., stride: int = ..., size: int = ..., x_pos: int = ..., y_pos: int = ..., x_hot: int = ..., y_hot: int = ..., reserved: int = ...) -> None: ...

VFIO_GFX_PLANE_TYPE_PROBE: int
VFIO_GFX_PLANE_TYPE_DMABUF: int
VFIO_GFX_PLANE_TYPE_REGION: int
VFIO_DEVICE_QUERY_GFX_PLANE: int
VFIO_DEVICE_GET_GFX_DMABUF: int
class VfioGfxPlaneType(enum.IntFlag):
    PROBE = 1
    DMABUF = 2
    REGION = 4

class vfio_device_ioeventfd(Struct):
    argsz: int
    flags: int
    offset: int
    data: int
    fd: int
    reserved: int
    def __init__(self, argsz: int = ..., flags: int = ..., offset: int = ..., data: int = ..., fd: int = ..., reserved: int = ...) -> None: ...

VFIO_DEVICE_IOEVENTFD_8: int
VFIO_DEVICE_IOEVENTFD_16: int
VFIO_DEVICE_IOEVENTFD_32: int
VFIO_DEVICE_IOEVENTFD_64: int
VFIO_DEVICE_IOEVENTFD_SIZE_MASK: int
VFIO_DEVICE_IOEVENTFD: int
class VfioDeviceIoeventfdFlag(enum.IntFlag):
    IOEVENTFD_8 = 1
    IOEVENTFD_16 = 2
    IOEVENTFD_32 = 4
    IOEVENTFD_64 = 8

class vfio_device_feature(Struct):
    argsz: int
    flags: int
    data: ctypes.Array[ctypes.c_ubyte]
    def __init__(self, argsz: int = ..., flags: int = ..., data: ctypes.Array[ctypes.c_ubyte] = ...) -> None: ...

VFIO_DEVICE_FEATURE_MASK: int
VFIO_DEVICE_FEATURE_GET: int
VFIO_DEVICE_FEATURE_SET: int
VFIO_DEVICE_FEATURE_PROBE: int
VFIO_DEVICE_FEATURE: int
class VfioDeviceFeatureFlag(enum.IntFlag):
    GET = 65536
    SET = 131072
    PROBE = 262144

class vfio_device_bind_iommufd(Struct):
    argsz: int
    flags: int
    iommufd: int
    out_devid: int
    token_uuid_ptr: int
    def __init__(self, argsz: int = ..., flags: int = ..., iommufd: int = ..., out_devid: int = ..., token_uuid_ptr: int = ...) -> None: ...

VFIO_DEVICE_BIND_FLAG_TOKEN: int
VFIO_DEVICE_BIND_IOMMUFD: int
class VfioDeviceBindFlag(enum.IntFlag):
    TOKEN = 1

class vfio_device_attach_iommufd_pt(Struct):
    argsz: int
    flags: int
    pt_id: int
    pasid: int
    def __init__(self, argsz: int = ..., flags: int = ..., pt_id: int = ..., pasid: int = ...) -> None: ...

VFIO_DEVICE_ATTACH_PASID: int
VFIO_DEVICE_ATTACH_IOMMUFD_PT: int
class VfioDeviceAttachFlag(enum.IntFlag):
    PASID = 1

class vfio_device_detach_iommufd_pt(Struct):
    argsz: int
    flags: int
    pasid: int
    def __init__(self, argsz: int = ..., flags: int = ..., pasid: int = ...) -> None: ...

VFIO_DEVICE_DETACH_PASID: int
VFIO_DEVICE_DETACH_IOMMUFD_PT: int
class VfioDeviceDetachFlag(enum.IntFlag):
    PASID = 1

VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: int
class vfio_device_feature_migration(Struct):
    flags: int
    def __init__(self, flags: int = ...) -> None: ...

VFIO_MIGRATION_STOP_COPY: int
VFIO_MIGRATION_P2P: int
VFIO_MIGRATION_PRE_COPY: int
VFIO_DEVICE_FEATURE_MIGRATION: int
class VfioMigrationFlag(enum.IntFlag):
    STOP_COPY = 1
    P2P = 2
    PRE_COPY = 4

class vfio_device_feature_mig_state(Struct):
    device_state: int
    data_fd: int
    def __init__(self, device_state: int = ..., data_fd: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: int
VFIO_DEVICE_STATE_ERROR: int
VFIO_DEVICE_STATE_STOP: int
VFIO_DEVICE_STATE_RUNNING: int
VFIO_DEVICE_STATE_STOP_COPY: int
VFIO_DEVICE_STATE_RESUMING: int
VFIO_DEVICE_STATE_RUNNING_P2P: int
VFIO_DEVICE_STATE_PRE_COPY: int
VFIO_DEVICE_STATE_PRE_COPY_P2P: int
VFIO_DEVICE_STATE_NR: int
class vfio_device_mig_state(enum.IntEnum):
    VFIO_DEVICE_STATE_ERROR = 0
    VFIO_DEVICE_STATE_STOP = 1
    VFIO_DEVICE_STATE_RUNNING = 2
    VFIO_DEVICE_STATE_STOP_COPY = 3
    VFIO_DEVICE_STATE_RESUMING = 4
    VFIO_DEVICE_STATE_RUNNING_P2P = 5
    VFIO_DEVICE_STATE_PRE_COPY = 6
    VFIO_DEVICE_STATE_PRE_COPY_P2P = 7
    VFIO_DEVICE_STATE_NR = 8

class vfio_precopy_info(Struct):
    argsz: int
    flags: int
    initial_bytes: int
    dirty_bytes: int
    def __init__(self, argsz: int = ..., flags: int = ..., initial_bytes: int = ..., dirty_bytes: int = ...) -> None: ...

VFIO_PRECOPY_INFO_REINIT: int
VFIO_MIG_GET_PRECOPY_INFO: int
class VfioPrecopyInfoFlag(enum.IntFlag):
    REINIT = 1

VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY: int
class vfio_device_low_power_entry_with_wakeup(Struct):
    wakeup_eventfd: int
    reserved: int
    def __init__(self, wakeup_eventfd: int = ..., reserved: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: int
VFIO_DEVICE_FEATURE_LOW_POWER_EXIT: int
class vfio_device_feature_dma_logging_control(Struct):
    page_size: int
    num_ranges: int
    ranges: int
    def __init__(self, page_size: int = ..., num_ranges: int = ..., ranges: int = ...) -> None: ...

class vfio_device_feature_dma_logging_range(Struct):
    iova: int
    length: int
    def __init__(self, iova: int = ..., length: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_DMA_LOGGING_START: int
VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP: int
class vfio_device_feature_dma_logging_report(Struct):
    iova: int
    length: int
    page_size: int
    bitmap: int
    def __init__(self, iova: int = ..., length: int = ..., page_size: int = ..., bitmap: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: int
class vfio_device_feature_mig_data_size(Struct):
    stop_copy_length: int
    def __init__(self, stop_copy_length: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: int
class vfio_device_feature_bus_master(Struct):
    op: int
    def __init__(self, op: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_CLEAR_MASTER: int
VFIO_DEVICE_FEATURE_SET_MASTER: int
VFIO_DEVICE_FEATURE_BUS_MASTER: int
VFIO_DEVICE_FEATURE_DMA_BUF: int
class vfio_region_dma_range(Struct):
    offset: int
    length: int
    def __init__(self, offset: int = ..., length: int = ...) -> None: ...

class vfio_device_feature_dma_buf(Struct):
    region_index: int
    open_flags: int
    flags: int
    nr_ranges: int
    dma_ranges: ctypes.Array[vfio_region_dma_range]
    def __init__(self, region_index: int = ..., open_flags: int = ..., flags: int = ..., nr_ranges: int = ..., dma_ranges: ctypes.Array[vfio_region_dma_range] = ...) -> None: ...

VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2: int
class vfio_device_feature_zpci_err(Struct):
    data: int
    def __init__(self, data: int = ...) -> None: ...

VFIO_DEVICE_FEATURE_ZPCI_ERROR: int
class VfioDeviceFeature(enum.IntEnum):
    PCI_VF_TOKEN = 0
    MIGRATION = 1
    MIG_DEVICE_STATE = 2
    LOW_POWER_ENTRY = 3
    LOW_POWER_ENTRY_WITH_WAKEUP = 4
    LOW_POWER_EXIT = 5
    DMA_LOGGING_START = 6
    DMA_LOGGING_STOP = 7
    DMA_LOGGING_REPORT = 8
    MIG_DATA_SIZE = 9
    BUS_MASTER = 10
    DMA_BUF = 11
    MIG_PRECOPY_INFOv2 = 12
    ZPCI_ERROR = 13

class vfio_iommu_type1_info(Struct):
    argsz: int
    flags: int
    iova_pgsizes: int
    cap_offset: int
    pad: int
    def __init__(self, argsz: int = ..., flags: int = ..., iova_pgsizes: int = ..., cap_offset: int = ..., pad: int = ...) -> None: ...

VFIO_IOMMU_INFO_PGSIZES: int
VFIO_IOMMU_INFO_CAPS: int
class VfioIommuInfoFlag(enum.IntFlag):
    PGSIZES = 1
    CAPS = 2

VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: int
class vfio_iova_range(Struct):
    start: int
    end: int
    def __init__(self, start: int = ..., end: int = ...) -> None: ...

class vfio_iommu_type1_info_cap_iova_range(Struct):
    header: vfio_info_cap_header
    nr_iovas: int
    reserved: int
    iova_ranges: ctypes.Array[vfio_iova_range]
    def __init__(self, header: vfio_info_cap_header = ..., nr_iovas: int = ..., reserved: int = ..., iova_ranges: ctypes.Array[vfio_iova_range] = ...) -> None: ...

VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: int
class vfio_iommu_type1_info_cap_migration(Struct):
    header: vfio_info_cap_header
    flags: int
    pgsize_bitmap: int
    max_dirty_bitmap_size: int
    def __init__(self, header: vfio_info_cap_header = ..., flags: int = ..., pgsize_bitmap: int = ..., max_dirty_bitmap_size: int = ...) -> None: ...

VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: int
class vfio_iommu_type1_info_dma_avail(Struct):
    header: vfio_info_cap_header
    avail: int
    def __init__(self, header: vfio_info_cap_header = ..., avail: int = ...) -> None: ...

VFIO_IOMMU_GET_INFO: int
class VfioIommuType1InfoCap(enum.IntEnum):
    CAP_IOVA_RANGE = 1
    CAP_MIGRATION = 2
    DMA_AVAIL = 3

class vfio_iommu_type1_dma_map(Struct):
    argsz: int
    flags: int
    vaddr: int
    iova: int
    size: int
    def __init__(self, argsz: int = ..., flags: int = ..., vaddr: int = ..., iova: int = ..., size: int = ...) -> None: ...

VFIO_DMA_MAP_FLAG_READ: int
VFIO_DMA_MAP_FLAG_WRITE: int
VFIO_DMA_MAP_FLAG_VADDR: int
VFIO_IOMMU_MAP_DMA: int
class VfioDmaMapFlag(enum.IntFlag):
    READ = 1
    WRITE = 2
    VADDR = 4

class vfio_bitmap(Struct):
    pgsize: int
    size: int
    data: ctypes._Pointer[ctypes.c_ulong]
    def __init__(self, pgsize: int = ..., size: int = ..., data: ctypes._Pointer[ctypes.c_ulong] = ...) -> None: ...

class vfio_iommu_type1_dma_unmap(Struct):
    argsz: int
    flags: int
    iova: int
    size: int
    data: ctypes.Array[ctypes.c_ubyte]
    def __init__(self, argsz: int = ..., flags: int = ..., iova: int = ..., size: int = ..., data: ctypes.Array[ctypes.c_ubyte] = ...) -> None: ...

VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: int
VFIO_DMA_UNMAP_FLAG_ALL: int
VFIO_DMA_UNMAP_FLAG_VADDR: int
VFIO_IOMMU_UNMAP_DMA: int
class VfioDmaUnmapFlag(enum.IntFlag):
    GET_DIRTY_BITMAP = 1
    ALL = 2
    VADDR = 4

VFIO_IOMMU_ENABLE: int
VFIO_IOMMU_DISABLE: int
class vfio_iommu_type1_dirty_bitmap(Struct):
    argsz: int
    flags: int
    data: ctypes.Array[ctypes.c_ubyte]
    def __init__(self, argsz: int = ..., flags: int = ..., data: ctypes.Array[ctypes.c_ubyte] = ...) -> None: ...

VFIO_IOMMU_DIRTY_PAGES_FLAG_START: int
VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP: int
VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: int
class vfio_iommu_type1_dirty_bitmap_get(Struct):
    iova: int
    size: int
    bitmap: vfio_bitmap
    def __init__(self, iova: int = ..., size: int = ..., bitmap: vfio_bitmap = ...) -> None: ...

VFIO_IOMMU_DIRTY_PAGES: int
class VfioDirtyPagesFlag(enum.IntFlag):
    START = 1
    STOP = 2
    GET_BITMAP = 4

class vfio_iommu_spapr_tce_ddw_info(Struct):
    pgsizes: int
    max_dynamic_windows_supported: int
    levels: int
    def __init__(self, pgsizes: int = ..., max_dynamic_windows_supported: int = ..., levels: int = ...) -> None: ...

class vfio_iommu_spapr_tce_info(Struct):
    argsz: int
    flags: int
    dma32_window_start: int
    dma32_window_size: int
    ddw: vfio_iommu_spapr_tce_ddw_info
    def __init__(self, argsz: int = ..., flags: int = ..., dma32_window_start: int = ..., dma32_window_size: int = ..., ddw: vfio_iommu_spapr_tce_ddw_info = ...) -> None: ...

VFIO_IOMMU_SPAPR_INFO_DDW: int
VFIO_IOMMU_SPAPR_TCE_GET_INFO: int
class VfioIommuSpaprInfoFlag(enum.IntFlag):
    DDW = 1

class vfio_eeh_pe_err(Struct):
    type: int
    func: int
    addr: int
    mask: int
    def __init__(self, type: int = ..., func: int = ..., addr: int = ..., mask: int = ...) -> None: ...

class _vfio_eeh_pe_op_u(Union):
    err: vfio_eeh_pe_err
    def __init__(self, err: vfio_eeh_pe_err = ...) -> None: ...

class vfio_eeh_pe_op(Struct):
    argsz: int
    flags: int
    op: int
    _u: _vfio_eeh_pe_op_u
    err: vfio_eeh_pe_err
    def __init__(self, argsz: int = ..., flags: int = ..., op: int = ...) -> None: ...

VFIO_EEH_PE_DISABLE: int
VFIO_EEH_PE_ENABLE: int
VFIO_EEH_PE_UNFREEZE_IO: int
VFIO_EEH_PE_UNFREEZE_DMA: int
VFIO_EEH_PE_GET_STATE: int
VFIO_EEH_PE_STATE_NORMAL: int
VFIO_EEH_PE_STATE_RESET: int
VFIO_EEH_PE_STATE_STOPPED: int
VFIO_EEH_PE_STATE_STOPPED_DMA: int
VFIO_EEH_PE_STATE_UNAVAIL: int
VFIO_EEH_PE_RESET_DEACTIVATE: int
VFIO_EEH_PE_RESET_HOT: int
VFIO_EEH_PE_RESET_FUNDAMENTAL: int
VFIO_EEH_PE_CONFIGURE: int
VFIO_EEH_PE_INJECT_ERR: int
VFIO_EEH_PE_OP: int
class vfio_iommu_spapr_register_memory(Struct):
    argsz: int
    flags: int
    vaddr: int
    size: int
    def __init__(self, argsz: int = ..., flags: int = ..., vaddr: int = ..., size: int = ...) -> None: ...

VFIO_IOMMU_SPAPR_REGISTER_MEMORY: int
VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: int
class vfio_iommu_spapr_tce_create(Struct):
    argsz: int
    flags: int
    page_shift: int
    window_size: int
    levels: int
    start_addr: int
    def __init__(self, argsz: int = ..., flags: int = ..., page_shift: int = ..., window_size: int = ..., levels: int = ..., start_addr: int = ...) -> None: ...

VFIO_IOMMU_SPAPR_TCE_CREATE: int
class vfio_iommu_spapr_tce_remove(Struct):
    argsz: int
    flags: int
    start_addr: int
    def __init__(self, argsz: int = ..., flags: int = ..., start_addr: int = ...) -> None: ...

VFIO_IOMMU_SPAPR_TCE_REMOVE: int

IOCTLS: tuple[IoctlDef, ...]
STRUCTS: tuple[type[Struct] | type[Union], ...]
