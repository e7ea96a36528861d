//! AFL++ harness of the `replay_trace` target (scripts/fuzz replay_trace SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::replay_trace(data));
}
