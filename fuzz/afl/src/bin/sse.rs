//! AFL++ harness of the `sse` target (scripts/fuzz sse SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::sse(data));
}
