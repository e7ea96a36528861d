//! AFL++ harness of the `openai_body` target (scripts/fuzz openai_body SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::openai_body(data));
}
