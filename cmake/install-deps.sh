#!/usr/bin/env bash
# Installs every build, test and CI dependency from Debian/Ubuntu packages.
# Idempotent: packages already present are left alone.  Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
  libclblast-dev libpng-dev libyaml-dev libturbojpeg0-dev libjpeg-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata python3-onnx
  python3 python3-torch python3-torchvision python3-numpy python3-pil python3-yaml
  python3-pytest python3-venv python3-pip
  dataset-fashion-mnist chromium
  slurm-wlm munge
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
