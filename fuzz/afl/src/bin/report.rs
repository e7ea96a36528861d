//! AFL++ harness of the `report` target (scripts/fuzz report SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::report(data));
}
