/// mimalloc: per-thread heaps with no lock on a cross-thread free (Pingora often frees a
/// buffer on another worker thread than the one that allocated it; glibc's arena locks then
/// contend). See `docs/execution.md` (performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    open_cli_proxy::run()
}
