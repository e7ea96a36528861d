//! Request-smuggling shapes: a POST whose framing headers disagree or are
//! obfuscated, with a second request hidden after it. Shared by the
//! service's hostile-client tests and the emulator proxy's.

/// The request hidden after each shape: a stream, so that running it
/// would show (`event: end`).
pub const SMUGGLED: &str = "GET /sse?chunks=1&interval_ms=0 HTTP/1.1\r\nhost: t\r\n\r\n";

/// Each shape, named, as the bytes a client sends.
pub fn shapes() -> Vec<(&'static str, String)> {
    let smuggled = SMUGGLED;
    let post = "POST /v1/completions HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n";
    vec![
        ("CL.TE", format!("{post}content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE.CL", format!("{post}transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len())),
        ("TE obfuscated: xchunked", format!("{post}transfer-encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE twice", format!("{post}transfer-encoding: chunked\r\ntransfer-encoding: identity\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE list: chunked, identity", format!("{post}transfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE with a space before the colon", format!("{post}transfer-encoding : chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE folded (obs-fold)", format!("{post}transfer-encoding:\r\n chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("CL twice, different", format!("{post}content-length: 5\r\ncontent-length: 6\r\n\r\nabcdef{smuggled}")),
        ("CL with a sign", format!("{post}content-length: +6\r\n\r\nabcdef{smuggled}")),
        ("TE on HTTP/1.0", format!("{}transfer-encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}", post.replace("HTTP/1.1", "HTTP/1.0"))),
    ]
}
