//! AFL++ harness of the `http_response` target (scripts/fuzz http_response SECONDS).

fn main() {
    afl::fuzz!(|data: &[u8]| trickle_fuzz::http_response(data));
}
