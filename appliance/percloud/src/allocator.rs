//! The process's allocator. The shipped build links musl statically, and musl's malloc made
//! every request cost 1.4-2.7x the CPU of the same code on glibc; jemalloc brings it back to
//! glibc's level while holding less than glibc under many parallel readers (measured in
//! docs/performance.md, "The allocator"). glibc builds keep glibc's malloc. Libraries stay
//! allocator-agnostic: only this binary chooses. Its arenas are set at build time
//! (`.cargo/config.toml`: one per core of a Raspberry Pi 4).

#[cfg(all(feature = "jemalloc", target_env = "musl"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
