//! The `gitgrant` binary: everything lives in the library; see `cli::run`.

fn main() -> std::process::ExitCode {
    gitgrant::cli::run()
}
