//! Every transport over TLS: a terminator with certificates made here (a
//! test CA, a server certificate it signed, one for another name) in front
//! of trickle. `--ca-file` trusts the CA; without it the certificate is
//! refused and the report says why; `--insecure` accepts anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use trickle_load::record::ConnectionEnd;

use crate::helpers::{load, spawn_trickle};

/// A CA and a certificate it signed for each of `names`' entries.
struct TestPki {
    dir: PathBuf,
    ca_pem: PathBuf,
    servers: Vec<(String, String)>,
}

fn pki(names: &[&[&str]]) -> TestPki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let servers = names
        .iter()
        .map(|sans| {
            let key = KeyPair::generate().unwrap();
            let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let cert = CertificateParams::new(sans)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "trickle-load-tls-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_pem = dir.join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    TestPki {
        dir,
        ca_pem,
        servers,
    }
}

/// Terminates TLS on 127.0.0.1:0 with this certificate (offering h2 and
/// HTTP/1.1) and relays the bytes to `backend` (trickle speaks both).
async fn terminator(cert_pem: &str, key_pem: &str, backend: SocketAddr) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                if let Ok(mut upstream) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            });
        }
    });
    port
}

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
    let pki = pki(&[&["localhost", "127.0.0.1"]]);
    let backend = trickle_addr().await;
    let (cert, key) = &pki.servers[0];
    let port = terminator(cert, key, backend).await;
    let host = format!("https://127.0.0.1:{port}");
    let ca = pki.ca_pem.to_str().unwrap();
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
    std::fs::remove_dir_all(&pki.dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_misnamed_certificate_is_refused_and_the_report_says_why() {
    let pki = pki(&[&["localhost", "127.0.0.1"], &["elsewhere.example"]]);
    let backend = trickle_addr().await;
    let good = terminator(&pki.servers[0].0, &pki.servers[0].1, backend).await;
    let misnamed = terminator(&pki.servers[1].0, &pki.servers[1].1, backend).await;
    let ca = pki.ca_pem.to_str().unwrap();
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
    std::fs::remove_dir_all(&pki.dir).ok();
}
