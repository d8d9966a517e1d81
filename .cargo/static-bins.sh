#!/bin/bash
# rustc wrapper (build.rustc-wrapper in .cargo/config.toml): links the shipped binaries, engine and
# engine-oci, as static PIEs, every other crate as given. Both are exec'd on every command (and the
# CLI once per `engine run`): a static PIE has no dynamic loader at start-up (no libc/libm/libgcc_s
# to map, no symbol lookups, no libgcc_s CPUID constructor: half the start-up CPU of the dynamic
# build, measured in issue 14) and keeps ASLR. Only here: crt-static in rustflags would also reach
# the proc-macro crates, which cannot be static. DT_RELR (glibc 2.36) packs the binary's 24,000
# relative relocations. Cargo calls `wrapper rustc ARGS` (`wrapper clippy-driver rustc ARGS` under
# clippy); the flags go last. bash, not sh: dash drops the environment variables whose names
# have a dash (CARGO_BIN_EXE_engine-oci). ENGINE_RUSTC_WRAPPER (sccache, say) is called in turn: an
# RUSTC_WRAPPER would replace this one, and the no-std client would not build.
crate= bin=
prev=
for a in "$@"; do
    case "$prev" in
        --crate-name) crate=$a ;;
        --crate-type) [ "$a" = bin ] && bin=1 ;;
    esac
    prev=$a
done
case "$bin:$crate" in
    # The client (src/bin/engine): no libc, no std. Its own _start, so a static non-PIE (no
    # relocations to apply: nothing in it could apply them); panic=abort, which a crate without
    # std needs (no unwinding).
    1:engine)
        exec $ENGINE_RUSTC_WRAPPER "$@" -C panic=abort -C relocation-model=static -C link-arg=-nostartfiles -C link-arg=-nostdlib \
            -C link-arg=-static -C link-arg=-no-pie ;;
    1:engine_front | 1:engine_core | 1:engine_oci)
        exec $ENGINE_RUSTC_WRAPPER "$@" -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs ;;
esac
exec $ENGINE_RUSTC_WRAPPER "$@"
