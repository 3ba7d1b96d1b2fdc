#!/bin/sh
# Render arenacam's chrony drop-in (/etc/chrony/conf.d/arenacam.conf).
#
#   scripts/chrony-conf.sh [--ntp-server HOST [--ntp-port PORT]] [--serve-ntp SUBNET]... [-o FILE]
#
# Without options it prints the default drop-in, the same text as config/chrony/arenacam.conf.
#   --ntp-server HOST  this unit follows HOST (a coordinator PC, or the unit serving the others)
#   --ntp-port PORT    HOST's NTP port (default 123)
#   --serve-ntp SUBNET this unit serves NTP to SUBNET (e.g. 192.168.1.0/24; may be repeated)
#   -o FILE            write FILE (atomically: a temporary file in the same folder, then rename)
# Exit status 2 on a bad argument; nothing is written then.
set -eu

usage() {
	sed -n '3,11s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
die() {
	echo "chrony-conf.sh: $*" >&2
	exit 2
}

one_word() { # non-empty, printable, no blanks or newlines (each value goes into one config line)
	case $1 in '' | *[![:graph:]]*) return 1 ;; esac
}
is_ipv4() { # a.b.c.d, each 0-255
	one_word "$1" || return 1
	printf '%s\n' "$1" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}$' || return 1
	old_ifs=$IFS
	IFS=.
	# shellcheck disable=SC2086
	set -- $1
	IFS=$old_ifs
	for octet in "$@"; do [ "$octet" -le 255 ] || return 1; done
}
is_ipv6() { # hex groups and colons (optionally a dotted IPv4 tail)
	one_word "$1" || return 1
	case $1 in *:*) ;; *) return 1 ;; esac
	printf '%s\n' "$1" | grep -Eq '^[0-9A-Fa-f:.]{2,45}$'
}
is_hostname() { # RFC 1123 labels, at most 253 characters, not all digits (that is an IPv4 address)
	one_word "$1" && [ "${#1}" -le 253 ] || return 1
	printf '%s\n' "$1" | grep -Eq '^[0-9.]+$' && return 1
	printf '%s\n' "$1" | grep -Eq '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$'
}
is_subnet() { # all | IPv4[/0-32] | IPv6[/0-128]
	one_word "$1" || return 1
	[ "$1" = all ] && return 0
	addr=${1%/*}
	bits=
	case $1 in */*) bits=${1#*/} ;; esac
	if [ -n "$bits" ] || [ "$addr" != "$1" ]; then
		printf '%s\n' "$bits" | grep -Eq '^[0-9]{1,3}$' || return 1
	fi
	if is_ipv4 "$addr"; then
		[ -z "$bits" ] || [ "$bits" -le 32 ]
	elif is_ipv6 "$addr"; then
		[ -z "$bits" ] || [ "$bits" -le 128 ]
	else
		return 1
	fi
}

add_subnet() { # checked one by one: the list is kept blank-separated
	is_subnet "$1" || die "--serve-ntp: not a subnet (address[/bits] or all): $1"
	subnets="$subnets $1"
}

server=
port=
subnets=
out=
while [ $# -gt 0 ]; do
	case $1 in
	--ntp-server) [ $# -ge 2 ] || usage; server=$2; shift 2 ;;
	--ntp-server=*) server=${1#*=}; shift ;;
	--ntp-port) [ $# -ge 2 ] || usage; port=$2; shift 2 ;;
	--ntp-port=*) port=${1#*=}; shift ;;
	--serve-ntp) [ $# -ge 2 ] || usage; add_subnet "$2"; shift 2 ;;
	--serve-ntp=*) add_subnet "${1#*=}"; shift ;;
	-o | --output) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
	-h | --help) usage ;;
	*) die "unknown argument: $1" ;;
	esac
done

if [ -n "$server" ]; then
	is_ipv4 "$server" || is_ipv6 "$server" || is_hostname "$server" || die "--ntp-server: not a host name or IP address: $server"
fi
if [ -n "$port" ]; then
	[ -n "$server" ] || die "--ntp-port needs --ntp-server"
	one_word "$port" && printf '%s\n' "$port" | grep -Eq '^[0-9]{1,5}$' && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "--ntp-port: not a port number: $port"
fi
render() {
	cat <<'EOF'
# arenacam: chrony settings of a camera unit, installed as /etc/chrony/conf.d/arenacam.conf
# (rendered by scripts/chrony-conf.sh). The unit's clock status (chronyc tracking) decides whether
# scheduled recording starts are accepted; see README.md.
#
# The /etc/chrony/chrony.conf of Debian 12's chrony package (also on Raspberry Pi OS bookworm)
# reads this folder first ("confdir /etc/chrony/conf.d") and then sets the public pool,
# "pool 2.debian.pool.ntp.org iburst", plus "makestep 1 3" and "rtcsync" (and takes NTP servers
# from DHCP). That pool is the default time source and is not repeated here
# (a second pool line would add up to 4 more servers). For a single-value directive such as
# makestep the last line read wins, i.e. chrony.conf's; the values below are the same, so they
# only matter on a system whose chrony.conf lacks them.

# Step the clock only during the first 3 clock updates after chronyd starts, and only when it is
# off by more than 1 s: a Pi without a battery-backed RTC boots with the time it saved at shutdown
# (hours or days behind), which is stepped at once. Later, and below 1 s, the clock is slewed
# (at most 83 ms/s), never stepped, so a running recording never sees time jump. A chronyd restart
# on a synchronised unit finds an offset far below 1 s and does not step either.
makestep 1 3

# Let the kernel copy the system time to the RTC every 11 minutes (Pi 5 has one; a no-op without).
rtcsync
EOF
	if [ -n "$server" ]; then
		portopt=
		[ -n "$port" ] && [ "$port" != 123 ] && portopt=" port $port"
		cat <<EOF

# LAN time server. iburst: 4-8 quick requests at start, so the first update comes within seconds.
# prefer + trust: this server sets the time of every unit, even when the public pool (still
# configured, the fallback while this server is unreachable) disagrees with it, so all units
# agree with each other and with the coordinator that schedules recordings.
# minpoll 4 maxpoll 6: ask every 16-64 s; cheap on a LAN and keeps temperature drift small.
server $server$portopt iburst prefer trust minpoll 4 maxpoll 6
EOF
	fi
	if [ -n "$subnets" ]; then
		printf '\n# This unit serves NTP to the other units of the arena.\n'
		for s in $subnets; do printf 'allow %s\n' "$s"; done
		cat <<'EOF'
# Without any time source of its own it still serves its clock, at stratum 10 (the units agree with
# each other but not necessarily with real time). Its own clock status then says "not
# synchronised" (reference is the local clock); its clients count as synchronised.
local stratum 10
EOF
	fi
}

if [ -z "$out" ]; then
	render
	exit 0
fi
dir=$(dirname -- "$out")
tmp=$(mktemp "$dir/.arenacam-chrony.XXXXXX")
trap 'rm -f "$tmp"' EXIT
render >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
