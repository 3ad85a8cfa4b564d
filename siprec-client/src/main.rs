//! `siprec-client`: see [`siprec_client::cli`].

fn main() -> std::process::ExitCode {
    siprec_client::cli::main()
}
