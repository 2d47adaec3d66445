#!/bin/sh
# Rebuilds the C benchmark kernels (*.c) to WebAssembly (*.wasm, committed:
# tests and benchmarks never need clang). Debian 12:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# (Debian clang 14.0.6, wasi-libc 0.0~git20220510.9886d3d-2 built the
# committed files). -msimd128 lets clang vectorize as gcc -O2 does for the
# native build (both engines run WebAssembly SIMD): without it jacobi-2d
# ran 2.8x native on wasmer and 7.3x on wazero, with it 2.1x and 3.9x.
# The benchmark builds the same sources natively with cc -O2 at bench time.
set -eu
cd "$(dirname "$0")"
for src in *.c; do
	clang --target=wasm32-wasi --sysroot=/usr -O2 -msimd128 -Wall -Werror \
		-Wl,--strip-all -Wl,-z,stack-size=1048576 \
		-o "${src%.c}.wasm" "$src"
done
