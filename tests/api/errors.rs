//! Bad input gets a clear problem+json answer, never a panic.

use serde_json::Value;

use crate::helpers::spawn_app;

struct Case {
    method: &'static str,
    path: &'static str,
    header: Option<(&'static str, &'static [u8])>,
    status: u16,
    problem_type: &'static str,
    parameter: Option<&'static str>,
    accepted: Option<&'static str>,
}

const fn case(path: &'static str, status: u16, problem_type: &'static str) -> Case {
    Case {
        method: "GET",
        path,
        header: None,
        status,
        problem_type,
        parameter: None,
        accepted: None,
    }
}

const INVALID: &str = "urn:trickle:problem:invalid-parameter";

#[tokio::test]
async fn bad_input_table() {
    let app = spawn_app().await;
    let cases = [
        Case {
            parameter: Some("chunks"),
            accepted: Some("an integer in 0..=1000000"),
            ..case("/sse?chunks=lots", 400, INVALID)
        },
        Case {
            parameter: Some("chunks"),
            accepted: Some("an integer in 0..=1000000"),
            ..case("/stream?chunks=1000001", 400, INVALID)
        },
        Case {
            parameter: Some("interval_ms"),
            accepted: Some("an integer in 0..=3600000"),
            ..case("/ndjson?interval_ms=-5", 400, INVALID)
        },
        Case {
            parameter: Some("first_delay_ms"),
            accepted: Some("an integer in 0..=3600000"),
            ..case("/sse?first_delay_ms=1.5", 400, INVALID)
        },
        Case {
            parameter: Some("size"),
            accepted: Some("an integer in 0..=65536"),
            ..case("/ws?size=99999999999999999999", 400, INVALID)
        },
        Case {
            parameter: Some("jitter_ms"),
            accepted: Some("an integer in 0..=100"),
            ..case("/sse?interval_ms=100&jitter_ms=101", 400, INVALID)
        },
        Case {
            parameter: Some("last_event_id"),
            accepted: Some("an event id in 0..=9"),
            ..case("/sse?last_event_id=10", 400, INVALID)
        },
        Case {
            parameter: Some("Last-Event-ID"),
            accepted: Some("an event id in 0..=4"),
            header: Some(("Last-Event-ID", b"abc")),
            ..case("/sse?chunks=5", 400, INVALID)
        },
        Case {
            parameter: Some("Last-Event-ID"),
            accepted: Some("an event id in 0..=9"),
            header: Some(("Last-Event-ID", b"\xc3\x28")),
            ..case("/sse", 400, INVALID)
        },
        Case {
            parameter: Some("colour"),
            ..case("/sse?colour=red", 400, INVALID)
        },
        Case {
            parameter: Some("size"),
            ..case("/sse?size=1&size=2", 400, INVALID)
        },
        Case {
            parameter: Some("chunks"),
            ..case("/sse?chunks=%zz", 400, INVALID)
        },
        Case {
            parameter: Some("chunks"),
            ..case("/sse?chunks=%ff", 400, INVALID)
        },
        case("/nowhere", 404, "about:blank"),
        Case {
            method: "POST",
            ..case("/sse", 405, "about:blank")
        },
        Case {
            method: "DELETE",
            ..case("/stream", 405, "about:blank")
        },
        Case {
            method: "PUT",
            ..case("/healthz", 405, "about:blank")
        },
    ];
    for c in cases {
        let mut request = app
            .client
            .request(c.method.parse().unwrap(), app.url(c.path));
        if let Some((name, value)) = c.header {
            request = request.header(
                name,
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let response = request.send().await.unwrap();
        let what = format!("{} {}", c.method, c.path);
        assert_eq!(response.status().as_u16(), c.status, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        if c.status == 405 {
            assert_eq!(response.headers()["allow"], "GET", "{what}");
        }
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], c.status, "{what}");
        assert_eq!(problem["type"], c.problem_type, "{what}");
        assert!(
            problem["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}"
        );
        assert_eq!(
            problem["parameter"].as_str(),
            c.parameter,
            "{what}: {problem}"
        );
        if c.accepted.is_some() {
            assert_eq!(
                problem["accepted"].as_str(),
                c.accepted,
                "{what}: {problem}"
            );
        }
    }
    // Nothing above opened a stream.
    assert_eq!(app.open_streams().await, 0);
}
