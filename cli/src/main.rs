fn main() -> std::process::ExitCode {
    open_cli::run()
}
