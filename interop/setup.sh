#!/usr/bin/env bash
# Installs what the interop suite needs on a fresh Debian machine and
# builds the hyper peers once (cached in interop/hyper/target):
#   - Debian's librust-*-dev crates, which cargo builds against offline
#     (interop/hyper/.cargo/config.toml points crates-io at
#     /usr/share/cargo/registry);
#   - cargo itself: the machine's rustup toolchain in ~/.cargo/bin if
#     there is one, else Debian's cargo package.
# Run as root (CI is). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"

CRATES=(librust-hyper+full-dev librust-h2-dev librust-tokio+full-dev librust-rustls-dev
  librust-tokio-rustls-dev librust-rustls-pemfile-dev librust-sha2-dev)
missing=()
for p in "${CRATES[@]}"; do
  # librust-hyper+full-dev is a virtual package: ask for the real one.
  base="${p%%+*}"; base="${base%-dev}-dev"
  dpkg -s "$base" >/dev/null 2>&1 || missing+=("$p")
done
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  missing+=(cargo)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "interop/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo --version
echo "interop/setup.sh: building the hyper peers (first build: a few minutes on 2 cores)"
(cd hyper && cargo build --release --quiet)
ls -l hyper/target/release/client hyper/target/release/server
