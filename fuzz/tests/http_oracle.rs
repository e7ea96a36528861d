//! Differential test: trickle-load's HTTP/1.1 response reader against an
//! independent one, hyper's client connection, on generated responses
//! (every body framing, header-name case, whitespace around values, chunk
//! sizes in either case with leading zeros, chunk extensions, trailers,
//! bodies cut short) fed to trickle-load's reader in arbitrary reads.
//! Both must see the same status and the same payload, and agree on
//! whether a sized or chunked body came whole.
#![allow(clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trickle_load::fuzzing::read_response;

/// What hyper's client made of `response`: the status, the payload it
/// handed out, and whether the body ended without an error.
#[derive(Debug)]
struct Oracle {
    status: u16,
    payload: Vec<u8>,
    whole: bool,
}

fn hyper_reads(response: &[u8]) -> Oracle {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .expect("a handshake over a pipe");
        tokio::spawn(connection);
        let request = hyper::Request::get("/stream")
            .header("host", "test")
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let answer = tokio::spawn(sender.send_request(request));
        // The server reads the request's head (hyper refuses a response
        // that comes before its request), answers with the whole
        // response, then closes: the end of a close-delimited body.
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            server
                .read_exact(&mut byte)
                .await
                .expect("the request's head");
            request.push(byte[0]);
        }
        server.write_all(response).await.expect("the pipe takes it");
        server.shutdown().await.expect("the pipe closes");
        let mut response = answer
            .await
            .expect("the request task")
            .expect("hyper reads a head the generator made valid");
        let status = response.status().as_u16();
        let mut payload = Vec::new();
        let mut whole = true;
        while let Some(frame) = response.body_mut().frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        payload.extend_from_slice(data);
                    }
                }
                Err(_) => {
                    whole = false;
                    break;
                }
            }
        }
        drop(server);
        Oracle {
            status,
            payload,
            whole,
        }
    })
}

#[derive(Debug, Clone)]
enum Body {
    /// `Content-Length`, and how many of its bytes are sent.
    Sized { payload: Vec<u8>, sent: usize },
    /// Chunks (size, in upper-case hex?, leading zeros, extension),
    /// trailers, and whether the last chunk and the end are sent.
    Chunked {
        chunks: Vec<(Vec<u8>, bool, usize, bool)>,
        trailers: Vec<String>,
        finished: bool,
        also_length: bool,
        /// `chunked` alone, or after another coding (`gzip, chunked`).
        after_gzip: bool,
    },
    /// No framing header: the body ends when the connection closes.
    Close(Vec<u8>),
}

fn name_case(name: &str, style: u8) -> String {
    match style % 3 {
        0 => name.to_owned(),
        1 => name.to_ascii_uppercase(),
        _ => name
            .split('-')
            .map(|part| {
                let mut c = part.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

fn bytes_of(body: &Body) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::new();
    let mut wire = Vec::new();
    match body {
        Body::Sized { payload, sent } => {
            head.extend_from_slice(format!("Content-Length: {}\r\n", payload.len()).as_bytes());
            wire.extend_from_slice(&payload[..*sent]);
        }
        Body::Chunked {
            chunks,
            trailers,
            finished,
            also_length,
            after_gzip,
        } => {
            head.extend_from_slice(if *after_gzip {
                b"Transfer-Encoding: gzip, chunked\r\n"
            } else {
                b"Transfer-Encoding: chunked\r\n"
            });
            if *also_length {
                // Both: RFC 9112 6.3 says chunked wins.
                head.extend_from_slice(b"Content-Length: 3\r\n");
            }
            for (data, upper, zeros, extension) in chunks {
                let size = if *upper {
                    format!("{:X}", data.len())
                } else {
                    format!("{:x}", data.len())
                };
                wire.extend_from_slice("0".repeat(*zeros).as_bytes());
                wire.extend_from_slice(size.as_bytes());
                if *extension {
                    wire.extend_from_slice(b";name=\"value\"");
                }
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(data);
                wire.extend_from_slice(b"\r\n");
            }
            if *finished {
                wire.extend_from_slice(b"0\r\n");
                for trailer in trailers {
                    wire.extend_from_slice(trailer.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"\r\n");
            }
        }
        Body::Close(payload) => wire.extend_from_slice(payload),
    }
    (head, wire)
}

fn body() -> impl Strategy<Value = Body> {
    let payload = proptest::collection::vec(any::<u8>(), 0..300);
    let chunk = (
        proptest::collection::vec(any::<u8>(), 1..200),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
    );
    prop_oneof![
        (
            payload.clone(),
            any::<proptest::sample::Index>(),
            any::<bool>()
        )
            .prop_map(|(payload, cut, whole)| {
                let sent = if whole || payload.is_empty() {
                    payload.len()
                } else {
                    cut.index(payload.len())
                };
                Body::Sized { payload, sent }
            }),
        (
            proptest::collection::vec(chunk, 0..6),
            proptest::collection::vec("x-[a-z]{1,5}: [a-z0-9]{0,5}", 0..3),
            prop_oneof![4 => Just(true), 1 => Just(false)],
            prop_oneof![4 => Just(false), 1 => Just(true)],
            prop_oneof![4 => Just(false), 1 => Just(true)],
        )
            .prop_map(|(chunks, trailers, finished, also_length, after_gzip)| {
                Body::Chunked {
                    chunks,
                    trailers,
                    finished,
                    also_length,
                    after_gzip,
                }
            }),
        payload.prop_map(Body::Close),
    ]
}

fn response() -> impl Strategy<Value = (u16, Vec<u8>, bool)> {
    (
        prop::sample::select(vec![200u16, 201, 404, 429, 500, 503]),
        proptest::collection::vec(
            ("[a-z]{1,8}(-[a-z]{1,6})?", "[ -~]{0,20}", any::<u8>()),
            0..6,
        ),
        any::<u8>(),
        body(),
    )
        .prop_map(|(status, headers, style, body)| {
            let (framing, wire) = bytes_of(&body);
            let mut bytes = format!("HTTP/1.1 {status} Whatever\r\n").into_bytes();
            for (name, value, case) in headers {
                if [
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "upgrade",
                ]
                .contains(&name.as_str())
                {
                    continue;
                }
                bytes.extend_from_slice(name_case(&name, case).as_bytes());
                bytes.extend_from_slice(b":");
                // Whitespace around a value is not part of it.
                bytes.extend_from_slice(if case % 2 == 0 { b" " } else { b"\t " });
                bytes.extend_from_slice(value.trim().as_bytes());
                bytes.extend_from_slice(if case % 4 == 0 { b"  \r\n" } else { b"\r\n" });
            }
            let framing = String::from_utf8_lossy(&framing)
                .lines()
                .map(|line| {
                    let (name, value) = line.split_once(": ").unwrap_or((line, ""));
                    format!("{}: {value}\r\n", name_case(name, style))
                })
                .collect::<String>();
            bytes.extend_from_slice(framing.as_bytes());
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&wire);
            let framed = !matches!(body, Body::Close(_));
            (status, bytes, framed)
        })
}

/// `bytes` in reads of the given sizes (cycled).
fn reads<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    let mut at = 0;
    while !rest.is_empty() {
        let take = sizes[at % sizes.len()].clamp(1, rest.len());
        pieces.push(&rest[..take]);
        rest = &rest[take..];
        at += 1;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn the_raw_reader_agrees_with_hypers_client(
        (status, bytes, framed) in response(),
        sizes in proptest::collection::vec(1usize..40, 1..5),
    ) {
        let oracle = hyper_reads(&bytes);
        let ours = read_response(&reads(&bytes, &sizes));
        prop_assert_eq!(ours.error.as_deref().filter(|_| oracle.whole), None, "hyper read it whole");
        prop_assert_eq!(ours.status, Some(oracle.status));
        prop_assert_eq!(ours.status, Some(status));
        if oracle.whole {
            prop_assert_eq!(&ours.payload, &oracle.payload);
        } else {
            // Cut short: hyper hands out what came before the cut, and so
            // do we (perhaps more of a chunk hyper held back).
            prop_assert!(ours.payload.starts_with(&oracle.payload));
        }
        if framed {
            prop_assert_eq!(ours.complete, oracle.whole, "a sized or chunked body came whole");
        }
    }
}

/// The oracle tells a cut body from a whole one: the comparison above
/// would be worthless if it always said whole.
#[test]
fn the_oracle_sees_a_body_cut_short() {
    let cut = hyper_reads(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
    assert!(!cut.whole);
    let whole =
        hyper_reads(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert!(whole.whole);
    assert_eq!(whole.payload, b"abc");
}
