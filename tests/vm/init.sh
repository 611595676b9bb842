#!/bin/busybox sh
# /init of the VM lane's initramfs (packed by tests/vm/harness.py with a static busybox).
#
# 1. loads the modules the kernel needs for 9p and overlayfs (none for a kernel with them built in),
# 2. mounts the host's / (9p tag "hostroot", read-only) under a tmpfs overlay, so the guest runs the
#    host's own python3 and the project checkout by their absolute paths,
# 3. mounts the run folder (9p tag "pyvfioout", read-write) at its host path,
# 4. runs <run folder>/run.sh as root inside that root (it starts tests/vm/guest.py),
# 5. writes the exit status to <run folder>/rc and powers off.
#
# Parameters come on the kernel command line: pyvfio.out=DIR pyvfio.kmods=DIR pyvfio.tmpfs=DIR,DIR,...
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

die() {
    echo "[pyvfio-init] FATAL: $*"
    poweroff -f
}

OUT=""
KMODS=""
TMPFS=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        pyvfio.out=*) OUT="${arg#pyvfio.out=}" ;;
        pyvfio.kmods=*) KMODS="${arg#pyvfio.kmods=}" ;;
        pyvfio.tmpfs=*) TMPFS="${arg#pyvfio.tmpfs=}" ;;
    esac
done
[ -n "$OUT" ] || die "no pyvfio.out= on the kernel command line"
KREL=$(uname -r)
echo "[pyvfio-init] kernel $KREL"

if [ -f /modules/order ]; then
    for m in $(cat /modules/order); do
        insmod "/modules/$m" || echo "[pyvfio-init] insmod $m failed"
    done
fi

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower \
    || die "cannot mount the host root over 9p"
mount -t tmpfs -o size=50% tmpfs /rw || die "cannot mount the overlay's tmpfs"
mkdir -p /rw/upper /rw/work
R=/newroot
if ! mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work "$R"; then
    echo "[pyvfio-init] overlayfs failed: the host root stays read-only"
    mount --bind /lower "$R"
fi
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t devtmpfs devtmpfs "$R/dev"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts devpts "$R/dev/pts"
mount -t debugfs debugfs "$R/sys/kernel/debug" 2>/dev/null
# fresh, empty scratch folders (the host's own /tmp etc. are not the guest's business); the harness
# leaves out any that holds a path the run needs
for d in $(echo "$TMPFS" | tr ',' ' '); do
    [ -d "$R$d" ] && mount -t tmpfs tmpfs "$R$d"
done
# the guest kernel's modules live in the harness cache: show them where modprobe looks
if [ -n "$KMODS" ] && [ -d "$R$KMODS" ]; then
    mkdir -p "$R/usr/lib/modules"
    rm -rf "$R/usr/lib/modules/$KREL"
    ln -s "$KMODS" "$R/usr/lib/modules/$KREL"
fi
mount -t 9p -o trans=virtio,version=9p2000.L,rw,cache=none,msize=262144 pyvfioout "$R$OUT" \
    || die "cannot mount the run folder $OUT over 9p"

echo "[pyvfio-init] running $OUT/run.sh"
chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh "$OUT/run.sh"
rc=$?
echo "$rc" > "$R$OUT/rc"
echo "[pyvfio-init] exit status $rc"
sync
umount "$R$OUT" 2>/dev/null
poweroff -f
