#!/bin/busybox sh
# /init of the graders' VM (tests/src/vm): PID 1 of a guest that has only busybox,
# the files the grader asked for, and this script. It prepares what a modern
# distribution would (a pure cgroup v2, a user with a delegated subtree, as
# systemd gives each logged-in user), runs the grader's script, reports on the
# second serial port (ttyS1) and powers off. Anything unexpected ends in a kernel
# panic (PID 1 exiting), which qemu, started with -no-reboot, turns into its exit.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
set -eu

if [ "${1:-}" != on-tmpfs ]; then
    # The initramfs is the "rootfs" mount, which pivot_root(2) refuses to move
    # (EINVAL): container runtimes pivot. So copy everything to a tmpfs and make
    # that the root, as a distribution's initramfs switches to the real root.
    mount -t tmpfs -o mode=0755 root /newroot
    for entry in /*; do
        [ "$entry" = /newroot ] || cp -a "$entry" /newroot/
    done
    exec switch_root /newroot /init on-tmpfs
fi

. /keel/env

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=0755 run /run
hostname keel-vm

while read -r module; do
    insmod "$module"
done < /keel/modules

# Only cgroup v2 (no v1 hierarchy is mounted), delegating as systemd does
# (nsdelegate: a cgroup namespace's root is a delegation boundary).
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
controllers="+cpu +io +memory +pids"
echo "$controllers" > /sys/fs/cgroup/cgroup.subtree_control
parent=/sys/fs/cgroup
for level in user.slice "user-$KEEL_VM_UID.slice"; do
    parent=$parent/$level
    mkdir "$parent"
    echo "$controllers" > "$parent/cgroup.subtree_control"
done
# The user's own subtree: the directory and the three files systemd hands over
# (Delegate=yes); the controllers' files inside stay root's.
mkdir "$KEEL_VM_DELEGATED"
chown "$KEEL_VM_UID:$KEEL_VM_UID" "$KEEL_VM_DELEGATED" \
    "$KEEL_VM_DELEGATED/cgroup.procs" "$KEEL_VM_DELEGATED/cgroup.subtree_control" \
    "$KEEL_VM_DELEGATED/cgroup.threads"

home=/home/$KEEL_VM_USER
mkdir -p "$home" "/run/user/$KEEL_VM_UID"
chown "$KEEL_VM_UID:$KEEL_VM_UID" "$home" "/run/user/$KEEL_VM_UID"
chmod 0700 "/run/user/$KEEL_VM_UID"

# The host watches the console for this line to measure the boot.
echo "keel-vm: running the script (uptime $(cut -d" " -f1 /proc/uptime) s)"
set +e
cd /root
timeout -s KILL "$KEEL_VM_TIMEOUT" sh /keel/script \
    < /dev/null > /keel/stdout 2> /keel/stderr
status=$?
set -e

# The report: lengths, then bytes. ttyS1 in raw mode passes them unchanged, and no
# kernel message can land among them (the kernel writes to ttyS0).
exec 3<> /dev/ttyS1
stty raw -echo <&3
{
    echo "status $status"
    echo "stdout $(wc -c < /keel/stdout)"
    cat /keel/stdout
    echo "stderr $(wc -c < /keel/stderr)"
    cat /keel/stderr
    echo "end"
} >&3
# Closing the port waits until the UART has sent everything.
exec 3>&-
poweroff -f
