//! `trickle-load`: a streaming load test, a capacity search, the Cloud Run
//! emulator, or a merge of reports ([`trickle_load::cli::main`]).
//! Exit code: 0 all checks passed, 1 a check failed, 2 usage or setup
//! error, 4 no check failed but one could not be decided on its samples
//! (UNRESOLVED); `capacity` has its own (docs/capacity.md).

fn main() -> std::process::ExitCode {
    trickle_load::cli::main()
}
