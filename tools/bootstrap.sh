#!/usr/bin/env bash
# Installs (idempotently) every Debian 12 package offload needs to build, test
# and benchmark, then prints what it did. Run as root. Safe to run repeatedly:
# only missing packages are installed, and services those packages ship (redis,
# nginx, postgresql, iperf3) are not started by the install.
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap bazel-rules-java g++ clang llvm libclang-rt-14-dev pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev
  libibverbs-dev libxdp-dev libbpf-dev libelf-dev zlib1g-dev
  libnl-3-dev libnl-route-3-dev
  # tests, demo and benchmarks
  python3 iproute2 procps util-linux iptables bpftool ethtool
  sockperf redis-server redis-tools nginx-light wrk gnuplot-nox
  # sharing tests (issue 14): ab, h2load, curl, PostgreSQL + pgbench, socat, iperf3, jq
  apache2-utils nghttp2-client curl postgresql postgresql-contrib socat iperf3 jq
  # unit file check
  systemd
)

if [[ $(id -u) -ne 0 ]]; then
  echo "bootstrap: run as root (it installs Debian packages): sudo $0" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "bootstrap: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "bootstrap: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package installs from starting services (redis, nginx): the tests and
# benchmarks start their own instances on loopback.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done"
