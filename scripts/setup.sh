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
# llama-cpp-python (the local language model's runtime) is published as source. It is compiled once per machine
# into our own wheel directory (about 6.5 minutes on a 2-core machine), then each new .venv installs that wheel in
# seconds. Built portable (AVX2/FMA, no AVX-512, no AMX): llama.cpp's default -march=native build crashes with
# SIGSEGV in its first multi-token decode on VMs whose CPU reports AMX (seen here, on a Sapphire Rapids guest),
# and pip's own wheel cache would hand such a build to every later .venv. The marker file records that this
# .venv holds our build, so one with pip's native build is repaired on the next set-up.
LLAMA_WHEELS="${SOMAGENT_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/somagent/wheels}"
LLAMA_MARK=.venv/.llama-cpp-portable
install_llama_cpp() {
  if [ -f "$LLAMA_MARK" ] && .venv/bin/python -c "import llama_cpp" 2>/dev/null; then return; fi
  local wheel
  wheel=$(ls "$LLAMA_WHEELS"/llama_cpp_python-*.whl 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$wheel" ]; then
    echo "setup: compiling llama-cpp-python (once per machine; minutes)"
    local start flags=""
    start=$(date +%s)
    if [ "$(uname -m)" = "x86_64" ]; then
      flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
      flags="$flags -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    else
      flags="-DGGML_NATIVE=OFF"
    fi
    mkdir -p "$LLAMA_WHEELS"
    CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      .venv/bin/pip wheel -q --no-deps --no-cache-dir -w "$LLAMA_WHEELS" 'llama-cpp-python>=0.3.7'
    wheel=$(ls "$LLAMA_WHEELS"/llama_cpp_python-*.whl | sort -V | tail -1)
    echo "setup: llama-cpp-python compiled in $(( $(date +%s) - start )) s"
  fi
  .venv/bin/pip install -q --force-reinstall --no-deps "$wheel"
  .venv/bin/pip install -q "$wheel"  # its own dependencies (numpy, jinja2, diskcache), from the index
  touch "$LLAMA_MARK"
}

stamp=.venv/.somagent-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  install_llama_cpp
  echo "setup: installing the package and its dev extras into .venv"
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
install_llama_cpp  # also when pyproject.toml is unchanged: repairs a .venv with a native build

# Compile the numba kernels into their cache now (seconds when already cached), so the first server
# start and the first test do not pay for it.
.venv/bin/python -c "import dsp; print(f'setup: dsp kernels ready in {dsp.warmup():.1f} s')"
