"""CPR: live update of the process that owns VFIO devices (cpr-exec, cpr-transfer; legacy and iommufd).

``state`` (fd registry and the big-endian state blob), ``legacy`` and
``iommufd`` (the per-backend steps), ``kvm`` (interrupts through KVM irqfds), ``modes`` (how descriptors and state
reach the new process), ``blockers`` (why CPR would fail, found up front),
``owner`` (a small device owner built on them) and ``demo``.
"""

from .blockers import Blocker, CprBlocked
from .modes import CprError, CprExecError
from .state import CprState, FdRegistry

__all__ = ["Blocker", "CprBlocked", "CprError", "CprExecError", "CprState", "FdRegistry"]
