//! AFL++ harness of the `events` target (scripts/fuzz events SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::events(data));
}
