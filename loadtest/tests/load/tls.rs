//! Every transport over TLS: a terminator with certificates made here (a
//! test CA, a server certificate it signed, one for another name) in front
//! of trickle. `--ca-file` trusts the CA; without it the certificate is
//! refused and the report says why; `--insecure` accepts anything.

use std::net::SocketAddr;

use trickle_load::record::ConnectionEnd;

use crate::helpers::{load, spawn_trickle};
use crate::test_tls::{terminate, TestCa};

/// trickle speaks h2c and HTTP/1.1 on one port: offer both.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

async fn trickle_addr() -> SocketAddr {
    let base = spawn_trickle(&[]).await;
    base.trim_start_matches("http://").parse().unwrap()
}

async fn run(host: &str, transport: &str, trust: &[&str]) -> trickle_load::report::Report {
    let mut argv = vec![
        "--users",
        "3",
        "--increase-rate",
        "100",
        "--run-time",
        "2s",
        "--transport",
        transport,
        "--chunks",
        "5",
        "--interval-ms",
        "50",
    ];
    argv.extend_from_slice(trust);
    load(host, &argv).await.0.report
}

fn completed(report: &trickle_load::report::Report) -> u64 {
    report
        .ends
        .get(&ConnectionEnd::Completed)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_streams_over_tls_with_the_ca_file() {
    let pki = TestCa::new();
    let backend = trickle_addr().await;
    let port = terminate(&pki.issue(&["localhost", "127.0.0.1"]), backend, ALPN).await;
    let host = format!("https://127.0.0.1:{port}");
    let ca = pki.ca_file.to_str().unwrap();
    for transport in ["sse", "ndjson", "text", "ws"] {
        let report = run(&host, transport, &["--ca-file", ca]).await;
        assert!(
            completed(&report) >= 3,
            "{transport}: {:?} {:?}",
            report.ends,
            report.error_samples
        );
        assert_eq!(report.integrity.lost + report.integrity.duplicated, 0);
        assert!(
            report.error_samples.is_empty(),
            "{:?}",
            report.error_samples
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_misnamed_certificate_is_refused_and_the_report_says_why() {
    let pki = TestCa::new();
    let backend = trickle_addr().await;
    let good = terminate(&pki.issue(&["localhost", "127.0.0.1"]), backend, ALPN).await;
    let misnamed = terminate(&pki.issue(&["elsewhere.example"]), backend, ALPN).await;
    let ca = pki.ca_file.to_str().unwrap();
    for transport in ["sse", "ws"] {
        // Not signed by anything the system trusts.
        let report = run(&format!("https://127.0.0.1:{good}"), transport, &[]).await;
        assert_eq!(completed(&report), 0, "{transport}: {:?}", report.ends);
        assert!(
            !report.error_samples.is_empty(),
            "{transport}: no reason kept"
        );
        assert!(
            report
                .error_samples
                .iter()
                .all(|s| s.end == ConnectionEnd::ConnectError),
            "{transport}: {:?}",
            report.error_samples
        );
        let why = format!("{:?}", report.error_samples).to_lowercase();
        eprintln!("{transport}, untrusted: {why}");
        assert!(why.contains("unknownissuer"), "{transport}: {why}");
        // Trusted CA, wrong name.
        let report = run(
            &format!("https://127.0.0.1:{misnamed}"),
            transport,
            &["--ca-file", ca],
        )
        .await;
        assert_eq!(completed(&report), 0, "{transport}: {:?}", report.ends);
        let why = format!("{:?}", report.error_samples).to_lowercase();
        eprintln!("{transport}, misnamed: {why}");
        assert!(why.contains("not valid for name"), "{transport}: {why}");
        // --insecure takes both.
        for port in [good, misnamed] {
            let report = run(
                &format!("https://127.0.0.1:{port}"),
                transport,
                &["--insecure"],
            )
            .await;
            assert!(
                completed(&report) >= 3,
                "{transport} --insecure: {:?}",
                report.error_samples
            );
        }
    }
}
