fn main() -> std::process::ExitCode {
    open_cli_proxy::run()
}
