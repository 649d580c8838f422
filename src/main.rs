fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(devenv::run(std::env::args_os(), devenv::Env::from_process()))
}
