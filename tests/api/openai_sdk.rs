//! The official OpenAI Python SDK streams from trickle's simulated model
//! (`tests/openai/sdk_check.py`, run in the virtualenv `scripts/test`
//! makes): chat and completions, with and without usage, not streamed,
//! bad requests as the SDK's typed errors, and the Responses API streamed
//! (every event type, ending completed) and not, and tool calls on both
//! APIs, streamed and whole.

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
    let model = [
        "--llm-ttft",
        "20ms",
        "--llm-decode-rate",
        "500",
        "--llm-reasoning-tokens",
        reasoning,
    ];
    let server = spawn_binary(&model, &[]).await;
    // The Responses API's answers end completed when the model stops on
    // its own before max_output_tokens.
    let output_tokens = "6";
    let responses = spawn_binary(
        &[&model[..], &["--llm-output-tokens", output_tokens]].concat(),
        &[],
    )
    .await;
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/openai/sdk_check.py"))
        .args([
            server.base.as_str(),
            reasoning,
            responses.base.as_str(),
            output_tokens,
        ])
        .output()
        .await
        .expect("the virtualenv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Every check ran (a script that stopped early cannot pass).
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        29,
        "{stdout}"
    );
}
