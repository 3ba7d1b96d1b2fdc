#!/usr/bin/env bash
# Install arenacam from this checkout on an existing Raspberry Pi OS (Debian trixie, arm64), or remove it.
#
#   sudo scripts/install.sh                      install or update; a second run changes nothing
#   sudo scripts/install.sh --uninstall          stop and remove the service, app, unit, chrony drop-in,
#                                                udev rule and config.txt lines; KEEPS the recordings
#                                                (/var/lib/arenacam) and the config (/etc/arenacam)
#   sudo scripts/install.sh --uninstall --purge  also remove those two, the arenacam user, and the gpio
#                                                group when this script created it
#   scripts/install.sh --dry-run [...]           say what would be done, change nothing
#   --ntp-server HOST [--ntp-port PORT]          chrony drop-in: follow a LAN time server, and/or
#   --serve-ntp SUBNET (repeatable)              serve NTP to SUBNET (scripts/chrony-conf.sh renders it;
#                                                remembered in /etc/arenacam/install.env for later runs;
#                                                --ntp-default goes back to the plain drop-in)
#
# Chroot-friendly (SD image builds): run it inside the target root (chroot ROOT .../scripts/install.sh).
# Without a running systemd (no /run/systemd/system) the unit is enabled, not started, and package
# scripts are kept from starting services by a temporary policy-rc.d.
#
# The app is built on the unit from the checkout: npm ci + tsc (src/ only) in a staging copy, then
# npm prune --omit=dev; the result replaces /opt/arenacam only when the source changed (a hash of the
# build inputs) or the installed tree no longer matches its manifest. npm: the system's if there is
# one, else a pinned npm (NPM_VERSION, checked against NPM_INTEGRITY) fetched from the npm registry
# into the staging folder for the build only: Debian's npm package would add ~340 packages.
# onoff's native epoll module is compiled against the headers of libnode-dev (npm_config_nodedir=/usr:
# nothing is fetched from nodejs.org) with python3, make and g++. These build tools stay installed:
# the next update rebuilds on the unit, and removing them would make every run reinstall them.
# apt packages are never removed by --uninstall.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
APP=/opt/arenacam
DATA=/var/lib/arenacam
ETC=/etc/arenacam
CONF=$ETC/arenacam.yaml
OPTIONS=$ETC/install.env
GPIO_MARK=$ETC/.gpio-group-created-by-install
UNIT_NAME=arenacam.service
UNIT=/etc/systemd/system/$UNIT_NAME
CHRONY_DROPIN=/etc/chrony/conf.d/arenacam.conf
UDEV_RULE=/etc/udev/rules.d/60-arenacam-gpio.rules
BOOT_CONFIG=/boot/firmware/config.txt
WRAPPER=/usr/local/bin/arenacam
SVC_USER=arenacam
BUTTON_PIN=17 # BCM; the button pulls it to ground, so it needs the pull-up set in config.txt
RECIPE=1      # bump when the build steps change, so installed trees are rebuilt
NPM_VERSION=10.9.9
NPM_INTEGRITY=sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg==
REGISTRY=${npm_config_registry:-https://registry.npmjs.org/}

mode=install dry=0 purge=0 ntp_server="" ntp_port="" serve_ntp="" ntp_default=0
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --uninstall) mode=uninstall ;;
    --purge) purge=1 ;;
    --dry-run | -n) dry=1 ;;
    --ntp-server) ntp_server=${2:?--ntp-server needs a host}; shift ;;
    --ntp-port) ntp_port=${2:?--ntp-port needs a port}; shift ;;
    --serve-ntp) serve_ntp="${serve_ntp:+$serve_ntp }${2:?--serve-ntp needs a subnet}"; shift ;;
    --ntp-default) ntp_default=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# A step's result; in a dry run, what it would have done.
say() {
  local msg=$2
  if [ "$dry" = 1 ] && [[ $msg != *"nothing to do"* ]]; then msg="(dry run, not done) $msg"; fi
  printf 'install: %s: %s\n' "$1" "$msg"
}
note() { printf 'install: note: %s\n' "$1"; }
die() { printf 'install: error: %s\n' "$1" >&2; exit 1; }
# Run a command that changes the system, or only print it in a dry run.
act() { if [ "$dry" = 1 ]; then printf 'install:   (dry run) would run: %s\n' "$*"; else "$@"; fi; }
systemd_up() { [ -d /run/systemd/system ]; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
now_stat() { stat -c '%a %U %G' "$1" 2>/dev/null || true; }

[ "$purge" = 1 ] && [ "$mode" != uninstall ] && die "--purge goes with --uninstall"
[ "$(id -u)" = 0 ] || [ "$dry" = 1 ] || die "run as root: sudo $0"
[ "$dry" = 1 ] && note "dry run: nothing is changed"

TMPD=$(mktemp -d /tmp/arenacam-install.XXXXXX)
POLICY_ADDED=0
cleanup() {
  rm -rf "$TMPD"
  if [ "$POLICY_ADDED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

# put_file STEP SRC DEST MODE OWNER GROUP: install SRC as DEST when content, mode or owner differ.
# Returns 0 when it changed something, 1 when DEST was already right.
put_file() {
  local step=$1 src=$2 dest=$3 m=$4 o=$5 g=$6
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(now_stat "$dest")" = "$m $o $g" ]; then
    say "$step" "$dest is up to date, nothing to do"
    return 1
  fi
  act install -D -m "$m" -o "$o" -g "$g" "$src" "$dest"
  say "$step" "installed $dest"
}

# remove_path STEP PATH...: remove what exists; returns 1 when there was nothing.
remove_path() {
  local step=$1 p gone=1
  shift
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then act rm -rf --one-file-system "$p"; say "$step" "removed $p"; gone=0; fi
  done
  [ "$gone" = 0 ] || say "$step" "$* not there, nothing to do"
  return "$gone"
}

# --- platform --------------------------------------------------------------------------------------
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
[ "$arch" = arm64 ] || note "this is $arch, not arm64: allowed for testing, the unit runs Raspberry Pi OS arm64"
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-unknown}")
[ "$codename" = trixie ] || note "made for Raspberry Pi OS / Debian trixie; this is $codename"
if ! systemd_up && [ ! -e /usr/sbin/policy-rc.d ] && [ "$dry" = 0 ] && [ "$mode" = install ]; then
  printf '#!/bin/sh\n# arenacam install.sh, while it runs without systemd: no service starts\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  POLICY_ADDED=1
fi

# --- chrony drop-in source: HOOK for the LAN time-server variant -----------------------------------
# Without NTP options the drop-in is config/chrony/arenacam.conf as it is. With --ntp-server HOST or
# --serve-ntp SUBNET it is what scripts/chrony-conf.sh prints for them. The options are remembered
# in /etc/arenacam/install.env so that an update without them keeps the LAN set-up.
CHRONY_RENDERER=$SRC/scripts/chrony-conf.sh
CHRONY_SRC=""
chrony_source() { # sets CHRONY_SRC

  if [ "$ntp_default" = 0 ] && [ -z "$ntp_server$serve_ntp" ] && [ -f "$OPTIONS" ]; then
    ntp_server=$(sed -n 's/^NTP_SERVER=//p' "$OPTIONS")
    ntp_port=$(sed -n 's/^NTP_PORT=//p' "$OPTIONS")
    serve_ntp=$(sed -n 's/^SERVE_NTP=//p' "$OPTIONS")
  fi
  if [ -z "$ntp_server$serve_ntp" ]; then
    [ -f "$SRC/config/chrony/arenacam.conf" ] || die "config/chrony/arenacam.conf is missing from $SRC"
    CHRONY_SRC=$SRC/config/chrony/arenacam.conf
    return
  fi
  [ -f "$CHRONY_RENDERER" ] || die "--ntp-server/--serve-ntp need the renderer $CHRONY_RENDERER, not in this checkout"
  local args=() s
  [ -z "$ntp_server" ] || args+=(--ntp-server "$ntp_server")
  [ -z "$ntp_port" ] || args+=(--ntp-port "$ntp_port")
  for s in $serve_ntp; do args+=(--serve-ntp "$s"); done
  sh "$CHRONY_RENDERER" "${args[@]}" >"$TMPD/chrony.conf" || die "the chrony renderer failed (${args[*]})"
  CHRONY_SRC=$TMPD/chrony.conf
}

# --- build inputs and the app tree -----------------------------------------------------------------
src_files() { (cd "$SRC" && find package.json package-lock.json tsconfig.json README.md src config -type f ! -name '*.sw?' -print0 | LC_ALL=C sort -z); }
src_hash() {
  { echo "recipe $RECIPE arch $arch node $(node -v 2>/dev/null || echo none)"; src_files | (cd "$SRC" && xargs -0 sha256sum); } | sha256sum | cut -c1-16
}
app_up_to_date() {
  [ -f "$APP/.source-hash" ] && [ "$(cat "$APP/.source-hash")" = "$1" ] && [ -f "$APP/.manifest" ] &&
    (cd "$APP" && sha256sum --quiet --strict -c .manifest >/dev/null 2>&1)
}
# fetch_npm DIR: the pinned npm from the registry, integrity-checked, unpacked into DIR/package.
fetch_npm() {
  node -e '
    const [url, out, want] = process.argv.slice(1);
    const fail = (m) => { console.error(`install: error: ${url}: ${m}`); process.exit(1); };
    const get = (u, hops) => require("https").get(u, (res) => {
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location && hops > 0) { res.resume(); return get(new URL(res.headers.location, u).href, hops - 1); }
      if (res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
      const parts = []; res.on("data", (c) => parts.push(c)).on("end", () => {
        const buf = Buffer.concat(parts);
        const got = "sha512-" + require("crypto").createHash("sha512").update(buf).digest("base64");
        if (got !== want) fail(`integrity ${got} is not the pinned ${want}`);
        require("fs").writeFileSync(out, buf);
      });
    }).on("error", (e) => fail(e.message));
    get(url, 5);' "${REGISTRY%/}/npm/-/npm-$NPM_VERSION.tgz" "$1/npm.tgz" "$NPM_INTEGRITY"
  tar -xzf "$1/npm.tgz" -C "$1"
}
build_app() {
  local stage out cache npm
  stage=$(mktemp -d /var/tmp/arenacam-build.XXXXXX)
  out=$stage/out
  cache=${npm_config_cache:-$stage/npm-cache}
  say app "building in $stage (npm ci, tsc, npm prune --omit=dev)"
  src_files | (cd "$SRC" && tar --null -T - -cf -) | tar -C "$stage" -xf -
  printf '{ "extends": "./tsconfig.json", "include": ["src/**/*.ts"] }\n' >"$stage/tsconfig.install.json"
  if command -v npm >/dev/null; then npm=(npm); else
    say app "no npm on this system: using npm $NPM_VERSION from $REGISTRY for the build only"
    mkdir "$stage/npm" && fetch_npm "$stage/npm" || { rm -rf "$stage"; die "could not fetch npm $NPM_VERSION"; }
    npm=(node "$stage/npm/package/bin/npm-cli.js")
  fi
  # Native modules against the installed headers (libnode-dev), never headers downloaded from nodejs.org.
  if [ -f /usr/include/node/common.gypi ]; then export npm_config_nodedir=/usr; fi
  (
    cd "$stage"
    export npm_config_update_notifier=false
    "${npm[@]}" ci --no-audit --no-fund --loglevel=error --cache "$cache"
    node node_modules/typescript/bin/tsc -p tsconfig.install.json
    "${npm[@]}" prune --omit=dev --no-audit --no-fund --loglevel=error --cache "$cache"
  ) || { rm -rf "$stage"; die "the build failed (see npm/tsc output above)"; }
  if [ ! -f "$stage/node_modules/epoll/build/Release/epoll.node" ]; then
    rm -rf "$stage"
    die "onoff's native module epoll did not build (needs python3, make, g++ and node headers): no button/LED without it"
  fi
  mkdir "$out"
  cp -a "$stage/package.json" "$stage/package-lock.json" "$stage/README.md" "$stage/node_modules" "$stage/config" "$out/"
  mkdir "$out/dist" && cp -a "$stage/dist/src" "$out/dist/"
  echo "$2" >"$out/.source-hash"
  (cd "$out" && find . -type f ! -name .manifest -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$out/.manifest"
  chown -R root:root "$out"
  chmod -R u+rwX,go+rX,go-w "$out"
  rm -rf "$1.new" "$1.old"
  mv "$out" "$1.new"
  if [ -d "$1" ]; then mv "$1" "$1.old"; fi
  mv "$1.new" "$1"
  rm -rf "$1.old" "$stage"
}

# --- install ---------------------------------------------------------------------------------------
do_install() {
  local changed=0 unit_changed=0 p

  # Packages: only what is missing; apt-get update only then.
  local want=(nodejs ffmpeg chrony v4l-utils systemd python3 make g++) missing=()
  # Node headers for native modules: Debian's libnode-dev (NodeSource's nodejs ships its own).
  [ -f /usr/include/node/common.gypi ] || want+=(libnode-dev)
  for p in "${want[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" = 0 ] || act apt-get update -q
  if ! pkg_installed rpicam-apps; then
    if apt-cache show rpicam-apps >/dev/null 2>&1; then missing+=(rpicam-apps); else
      note "rpicam-apps is not in the apt sources (plain Debian): skipped; CSI cameras need Raspberry Pi OS, USB cameras work"
    fi
  fi
  if [ "${#missing[@]}" = 0 ]; then say packages "all installed, nothing to do"; else
    act env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    say packages "installed ${missing[*]}"
  fi
  if command -v node >/dev/null; then
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
      die "Node.js >= 20.19 is needed, this has $(node -v) (Raspberry Pi OS / Debian trixie ships 20.19)"
  elif [ "$dry" = 0 ]; then die "node is not installed after apt-get install nodejs"; fi

  # User and groups: system user arenacam in video (cameras) and gpio (button, LED).
  if getent group gpio >/dev/null; then say user "group gpio exists, nothing to do"; else
    act groupadd --system gpio
    act install -d -m 755 "$ETC"
    [ "$dry" = 1 ] || echo "gpio group created by scripts/install.sh; --uninstall --purge removes it" >"$GPIO_MARK"
    say user "created group gpio"
  fi
  if id "$SVC_USER" >/dev/null 2>&1; then say user "$SVC_USER exists, nothing to do"; else
    act useradd --system --user-group --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin --comment "arenacam camera unit" "$SVC_USER"
    say user "created system user $SVC_USER"
  fi
  local groups
  groups=" $(id -nG "$SVC_USER" 2>/dev/null || true) "
  if [[ $groups == *" video "* && $groups == *" gpio "* ]]; then say user "$SVC_USER is in video and gpio, nothing to do"; else
    act usermod -a -G video,gpio "$SVC_USER"
    say user "added $SVC_USER to video and gpio"
  fi

  # Folders.
  local d spec
  for spec in "$APP 755 root root" "$ETC 755 root root" "$DATA 750 $SVC_USER $SVC_USER"; do
    read -r d p o g <<<"$spec"
    if [ "$(now_stat "$d")" = "$p $o $g" ]; then say folders "$d ($p $o:$g), nothing to do"; else
      act mkdir -p "$d" && act chown "$o:$g" "$d" && act chmod "$p" "$d"
      say folders "set up $d ($p $o:$g)"
    fi
  done

  # The app.
  local hash
  hash=$(src_hash)
  if app_up_to_date "$hash"; then say app "$APP is up to date (source $hash), nothing to do"; else
    [ "$dry" = 1 ] || build_app "$APP" "$hash"
    say app "installed $APP (source $hash)"
    changed=1
  fi
  printf '#!/bin/sh\n# arenacam CLI (installed by scripts/install.sh)\nARENACAM_CONFIG=${ARENACAM_CONFIG:-%s} exec /usr/bin/node %s/dist/src/cli.js "$@"\n' "$CONF" "$APP" >"$TMPD/wrapper"
  put_file app "$TMPD/wrapper" "$WRAPPER" 755 root root || true

  # Config: installed once, never overwritten. 0640 root:arenacam: it may hold a pairing link or upload settings.
  if [ -e "$CONF" ]; then say config "$CONF exists and is kept as it is, nothing to do"; else
    put_file config "$SRC/config/arenacam.yaml" "$CONF" 640 root "$SVC_USER"
    changed=1
  fi
  if [ -n "$ntp_server$serve_ntp" ] || [ "$ntp_default" = 1 ]; then
    printf 'NTP_SERVER=%s\nNTP_PORT=%s\nSERVE_NTP=%s\n' "$ntp_server" "$ntp_port" "$serve_ntp" >"$TMPD/install.env"
    put_file config "$TMPD/install.env" "$OPTIONS" 644 root root || true
  fi

  # systemd unit.
  [ -f "$SRC/systemd/arenacam.service" ] || die "systemd/arenacam.service is missing from $SRC"
  if put_file unit "$SRC/systemd/arenacam.service" "$UNIT" 644 root root; then changed=1 unit_changed=1; fi
  if systemd_up && [ "$unit_changed" = 1 ]; then act systemctl daemon-reload; fi
  if [ -f "$UNIT" ] && systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then say unit "$UNIT_NAME is enabled, nothing to do"; else
    act systemctl enable "$UNIT_NAME"
    say unit "enabled $UNIT_NAME"
  fi

  # chrony drop-in (Debian's chrony.conf reads /etc/chrony/conf.d).
  chrony_source
  if put_file chrony "$CHRONY_SRC" "$CHRONY_DROPIN" 644 root root && systemd_up; then
    act systemctl try-restart chrony.service
    say chrony "restarted chrony"
  fi

  # udev: group gpio may use the sysfs GPIO files. Raspberry Pi OS ships such a rule (raspberrypi-sys-mods).
  local others
  others=$(grep -ls '/sys/class/gpio' /usr/lib/udev/rules.d/*.rules /lib/udev/rules.d/*.rules /etc/udev/rules.d/*.rules 2>/dev/null | grep -v "$UDEV_RULE" || true)
  if [ -n "$others" ]; then say udev "the distribution gives group gpio the GPIO files ($(echo "$others" | head -1)), nothing to do"; else
    cat >"$TMPD/udev.rules" <<'EOF'
# arenacam (scripts/install.sh): members of group gpio may use the sysfs GPIO interface and the GPIO chips.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", ACTION=="add", GROUP="gpio", MODE="0660", RUN+="/bin/sh -c 'chgrp gpio /sys/class/gpio/export /sys/class/gpio/unexport; chmod 0220 /sys/class/gpio/export /sys/class/gpio/unexport'"
SUBSYSTEM=="gpio", KERNEL=="gpio[0-9]*", ACTION=="add", RUN+="/bin/sh -c 'chgrp -R gpio /sys%p; chmod -R g+w /sys%p'"
EOF
    if put_file udev "$TMPD/udev.rules" "$UDEV_RULE" 644 root root && systemd_up; then
      act udevadm control --reload-rules && act udevadm trigger --subsystem-match=gpio --action=add
    fi
  fi

  # Raspberry Pi firmware: pull-up on the button pin, between markers.
  if [ -f "$BOOT_CONFIG" ]; then
    printf '# arenacam begin: button pull-up (managed by scripts/install.sh)\n[all]\ngpio=%s=ip,pu\n# arenacam end\n' "$BUTTON_PIN" >"$TMPD/block"
    if [ "$(sed -n '/^# arenacam begin/,/^# arenacam end/p' "$BOOT_CONFIG")" = "$(cat "$TMPD/block")" ]; then
      say boot "$BOOT_CONFIG has the pull-up on GPIO $BUTTON_PIN, nothing to do"
    else
      sed '/^# arenacam begin/,/^# arenacam end/d' "$BOOT_CONFIG" >"$TMPD/config.txt"
      [ -z "$(tail -c1 "$TMPD/config.txt")" ] || echo >>"$TMPD/config.txt"
      cat "$TMPD/block" >>"$TMPD/config.txt"
      [ "$dry" = 1 ] || cat "$TMPD/config.txt" >"$BOOT_CONFIG"
      say boot "added gpio=$BUTTON_PIN=ip,pu to $BOOT_CONFIG (takes effect at the next boot)"
    fi
  else say boot "no $BOOT_CONFIG (not Raspberry Pi OS): nothing to do; give GPIO $BUTTON_PIN a pull-up another way"; fi

  # Start or restart.
  if ! systemd_up; then
    note "systemd is not running (chroot or image build): $UNIT_NAME is enabled only and starts at the next boot"
  elif ! systemctl is-active --quiet "$UNIT_NAME"; then
    act systemctl start "$UNIT_NAME" || die "$UNIT_NAME did not start: journalctl -u arenacam"
    say service "started $UNIT_NAME"
  elif [ "$changed" = 1 ]; then
    act systemctl restart "$UNIT_NAME" || die "$UNIT_NAME did not restart: journalctl -u arenacam"
    say service "restarted $UNIT_NAME"
  else say service "$UNIT_NAME is running, nothing to do"; fi
}

# --- uninstall -------------------------------------------------------------------------------------
do_uninstall() {
  local links
  links=$(find /etc/systemd/system -name "$UNIT_NAME" -type l 2>/dev/null || true)
  if systemd_up && systemctl is-active --quiet "$UNIT_NAME"; then act systemctl stop "$UNIT_NAME"; say service "stopped $UNIT_NAME"; else
    say service "$UNIT_NAME is not running, nothing to do"
  fi
  if [ -f "$UNIT" ] && [ -n "$links" ]; then act systemctl disable "$UNIT_NAME"; say unit "disabled $UNIT_NAME"; fi
  links=$(find /etc/systemd/system -name "$UNIT_NAME" -type l 2>/dev/null || true)
  # shellcheck disable=SC2086 # one path per line, no spaces in these paths
  if remove_path unit "$UNIT" $links && systemd_up; then act systemctl daemon-reload; fi
  if remove_path chrony "$CHRONY_DROPIN" && systemd_up; then act systemctl try-restart chrony.service; fi
  if remove_path udev "$UDEV_RULE" && systemd_up; then act udevadm control --reload-rules; fi
  remove_path app "$APP" "$WRAPPER" || true
  if [ -f "$BOOT_CONFIG" ] && grep -q '^# arenacam begin' "$BOOT_CONFIG"; then
    sed '/^# arenacam begin/,/^# arenacam end/d' "$BOOT_CONFIG" >"$TMPD/config.txt"
    [ "$dry" = 1 ] || cat "$TMPD/config.txt" >"$BOOT_CONFIG"
    say boot "removed the arenacam lines from $BOOT_CONFIG"
  else say boot "no arenacam lines in $BOOT_CONFIG, nothing to do"; fi
  if [ "$purge" = 0 ]; then
    say data "keeping $DATA (recordings) and $ETC (config), nothing to do; --purge removes them"
  else
    local gpio_ours=0
    [ ! -f "$GPIO_MARK" ] || gpio_ours=1
    remove_path data "$DATA" "$ETC" || true
    if id "$SVC_USER" >/dev/null 2>&1; then act userdel "$SVC_USER"; say user "removed user $SVC_USER"; else say user "no user $SVC_USER, nothing to do"; fi
    if getent group "$SVC_USER" >/dev/null; then act groupdel "$SVC_USER"; say user "removed group $SVC_USER"; fi
    if [ "$gpio_ours" = 1 ] && getent group gpio >/dev/null; then act groupdel gpio; say user "removed group gpio (this script made it)"; fi
  fi
  note "apt packages (nodejs, npm, ffmpeg, chrony, ...) are left installed"
}

if [ "$mode" = install ]; then do_install; else do_uninstall; fi
note "$mode finished"
