#!/bin/sh
# Boot a real systemd as PID 1 of a throw-away container, for test/systemd/real-systemd.test.ts.
#
#   unshare --mount --pid --fork --net --uts --ipc --cgroup sh box.sh WORKDIR REPO
#
# Must already run in fresh namespaces (unshare above) and in a cgroup2 group of its own (the
# caller moves itself there first), so nothing it mounts or creates outlives it: the root is an
# overlay of / with a tmpfs on top, REPO is bound read-only at /opt/arenacam, WORKDIR/files/ is
# copied over the root (config, unit drop-ins), /dev is a minimal private tmpfs, the network is a
# private loopback. systemd logs to its journal (journalctl in the container); /dev/console is a
# plain file, so nothing reaches the host's console.
set -eu
W=$1
REPO=$2
R=$W/root
mount --make-rprivate /
mkdir -p "$W/rw" "$R"
mount -t tmpfs tmpfs "$W/rw"
mkdir -p "$W/rw/upper" "$W/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/rw/upper,workdir=$W/rw/work" "$R"

# As scripts/install.sh does: a system user in the video and gpio groups, the app in /opt/arenacam.
chroot "$R" groupadd -f --system gpio
chroot "$R" useradd --system --user-group --groups video,gpio --home-dir /nonexistent --shell /usr/sbin/nologin arenacam
mkdir -p "$R/opt/arenacam"
mount --bind "$REPO" "$R/opt/arenacam"
mount -o remount,bind,ro "$R/opt/arenacam"
cp -a "$W/files/." "$R/"

mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero full random urandom tty; do
	touch "$R/dev/$n"
	mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs tmpfs "$R/dev/shm"
touch "$W/console" "$R/dev/console"
mount --bind "$W/console" "$R/dev/console"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
ip link set lo up

# No capability a container must not use on the host's kernel (modules, clock, reboot, raw I/O).
exec chroot "$R" /usr/bin/env -i container=arenacam-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	/usr/bin/setpriv --bounding-set -sys_module,-sys_time,-sys_boot,-sys_rawio -- \
	/lib/systemd/systemd --unit=box.target --log-target=journal --log-level=info systemd.unified_cgroup_hierarchy=1
