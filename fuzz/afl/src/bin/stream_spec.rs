//! AFL++ harness of the `stream_spec` target (scripts/fuzz stream_spec SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::stream_spec(data));
}
