//! The `gitgrant` binary: everything lives in the library; see `cli::run`.

fn main() -> std::process::ExitCode {
    tune_allocator();
    gitgrant::cli::run()
}

/// glibc serves allocations above a (dynamic) threshold with a fresh `mmap`
/// and returns them on free: libgit2 reads each version of a big tree (1-2
/// MB with 30,000 requests) into such a buffer, so a cold history walk spent
/// a fifth of its time in page faults (11 s of 61 s at 30,000 commits).
/// Buffers below 32 MiB come from the heap instead and are reused; freed
/// memory is given back past 256 MiB. Outputs are unchanged.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any
    // other thread exists, and an unsupported value is ignored (returns 0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
