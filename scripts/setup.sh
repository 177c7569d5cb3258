#!/usr/bin/env bash
# Idempotent set-up: Debian packages, .venv at the repo root, the package with its dev extras.
# Fast when already done: apt is skipped when every package is installed, pip when pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libopus0 espeak-ng sox libsndfile1 postgresql iproute2)
if [ "${SOMAGENT_BROWSER_TESTS:-1}" != "0" ]; then APT_PACKAGES+=(chromium); fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q -U pip
fi
stamp=.venv/.somagent-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # llama-cpp-python (the local language model's runtime) is published as source: pip compiles it once (about
  # 6.5 minutes on a 2-core machine) and keeps the wheel in its cache, so a new .venv reuses it in seconds.
  if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    echo "setup: installing llama-cpp-python (compiled once if pip's cache has no wheel for it; minutes)"
    start=$(date +%s)
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" .venv/bin/pip install -q 'llama-cpp-python>=0.3.7'
    echo "setup: llama-cpp-python ready in $(( $(date +%s) - start )) s"
  fi
  echo "setup: installing the package and its dev extras into .venv"
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

# Compile the numba kernels into their cache now (seconds when already cached), so the first server
# start and the first test do not pay for it.
.venv/bin/python -c "import dsp; print(f'setup: dsp kernels ready in {dsp.warmup():.1f} s')"
