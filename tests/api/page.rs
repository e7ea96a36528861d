//! The live page at `/`, in a real browser: Debian's Chromium driven by
//! playwright-core (tests/browser/page.mjs) runs a 20-event stream across
//! the server's deadline over SSE, WebSocket and NDJSON, and checks from the
//! DOM that every id arrived once, in order, with the resume marked.

use std::path::Path;

use crate::helpers::{spawn_app, spawn_binary};

#[tokio::test]
async fn browsers_get_the_page_and_other_clients_the_text_index() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!(
        "<code id=\"server-instance\">{}</code>",
        app.instance
    )));
    assert!(html.contains("href=\"/metrics\""));
    assert!(!html.contains("{{"), "every placeholder filled");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let text = app.get("/").await;
    assert!(text.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_id_once_across_deadlines_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} missing: apt-get install chromium (scripts/test installs it)"
    );
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core missing: npm ci --prefix tests/browser (scripts/test does)"
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let server = spawn_binary(&["--max-stream-duration", "1s", "--retry", "200ms"], &[]).await;
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/page.mjs"))
        .arg(&server.base)
        .arg(&out)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node is installed");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{report}screenshots in {}", out.display());
    assert!(run.status.success(), "{report}");
    for transport in ["sse", "ws", "ndjson"] {
        assert!(report.contains(&format!("PASS {transport}")), "{report}");
        assert!(out.join(format!("page-{transport}.png")).exists());
    }
}
