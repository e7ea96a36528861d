//! The official OpenAI Python SDK streams from trickle's simulated model
//! (`tests/openai/sdk_check.py`, run in the virtualenv `scripts/test`
//! makes): chat and completions, with and without usage, not streamed,
//! and bad requests as the SDK's typed errors.

use crate::helpers::spawn_binary;

#[tokio::test]
async fn the_official_openai_sdk_streams_from_the_simulated_model() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tests/openai/.venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: scripts/test creates it (python3 -m venv tests/openai/.venv && \
         tests/openai/.venv/bin/pip install -r tests/openai/requirements.txt)",
        python.display()
    );
    let reasoning = "2";
    let server = spawn_binary(
        &[
            "--llm-ttft",
            "20ms",
            "--llm-decode-rate",
            "500",
            "--llm-reasoning-tokens",
            reasoning,
        ],
        &[],
    )
    .await;
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/openai/sdk_check.py"))
        .args([server.base.as_str(), reasoning])
        .output()
        .await
        .expect("the virtualenv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Every check ran (a script that stopped early cannot pass).
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        19,
        "{stdout}"
    );
}
