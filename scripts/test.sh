#!/usr/bin/env bash
# The tests: the whole workspace, including the browser tests, which need
# Debian's chromium and chromium-driver, wget, and the Rust book (the
# rust-docs component). Whatever is missing is installed first.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromedriver ] || missing+=(chromium chromium-driver)
command -v wget >/dev/null 2>&1 || missing+=(wget)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]} (for the browser tests)"
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}" \
        || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
fi
if [ ! -f "$(rustc --print sysroot)/share/doc/rust/html/book/index.html" ]; then
    echo "== adding the rust-docs component (the Rust book is the large real site the gateway tests mirror)"
    rustup component add rust-docs
fi

cargo test --workspace --locked "$@"
