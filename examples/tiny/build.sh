#!/bin/sh
# Rebuilds tiny.wasm from tiny.c, or writes the module to $1 if given (a path
# relative to this directory, or absolute).
# Needs clang and wasm-ld; on Debian 12: apt-get install clang lld
# (Debian clang 14.0.6 built the committed tiny.wasm). No C library is used,
# so wasi-libc is not needed. The output is committed: nothing else in
# peergrid needs clang.
set -eu
cd "$(dirname "$0")"
out=${1:-tiny.wasm}
clang --target=wasm32 -Oz -nostdlib -ffreestanding -fno-builtin \
	-Wall -Wextra -Werror \
	-Wl,--no-entry -Wl,--export=_start -Wl,--strip-all \
	-Wl,-z,stack-size=16384 -Wl,--initial-memory=131072 \
	-o "$out" tiny.c
