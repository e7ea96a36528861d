//! A goose scenario with measured streams, as a goose user would write
//! it: each user logs in (`POST /session`; the answer carries a bearer
//! token), then, again and again, opens an SSE stream with that token,
//! measured by trickle-load's [`StreamMeter`]. goose's report gets the
//! stream rows (`STREAM ttfb first event`, `STREAM stream lifetime`);
//! trickle-load's report and its verdicts are printed at the end, and the
//! exit code is theirs (0 PASS, 1 FAIL, 4 UNRESOLVED).
//!
//! Against trickle requiring the token (a stream without it is refused):
//!
//! ```text
//! cargo run --release -- --require-session &
//! cargo run --release -p trickle-load --example goose_scenario -- \
//!     --host http://127.0.0.1:8080 --users 20 --increase-rate 20 --run-time 10s
//! ```
//!
//! goose's own flags all apply; `--run-time` is the meter's (the whole
//! run, ramp included: the meter ends the open streams, then goose's
//! users). `STREAM_REPORT=report.json` also writes trickle-load's report.

use std::sync::Arc;
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use trickle_load::scenario::{StreamMeter, StreamRequest, Transport};
use trickle_load::Expectations;

/// What a user keeps from its login.
#[derive(Clone)]
struct Session {
    token: String,
}

/// The login: a POST whose answer carries the token.
async fn log_in(user: &mut GooseUser) -> TransactionResult {
    let goose = user.post("/session", "").await?;
    let answer: serde_json::Value = match goose.response {
        Ok(response) => response
            .json()
            .await
            .map_err(|e| Box::new(TransactionError::Custom(format!("login answer: {e}"))))?,
        Err(e) => return Err(Box::new(TransactionError::Custom(format!("login: {e}")))),
    };
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| {
            Box::new(TransactionError::Custom(
                "no token in the login answer".into(),
            ))
        })?
        .to_owned();
    user.set_session_data(Session { token });
    Ok(())
}

/// A measured stream, with the user's token.
fn chat(meter: StreamMeter) -> Transaction {
    Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let meter = meter.clone();
        Box::pin(async move {
            let token = user
                .get_session_data::<Session>()
                .map(|s| s.token.clone())
                .ok_or_else(|| Box::new(TransactionError::Custom("not logged in".into())))?;
            let request = StreamRequest::get("/sse?chunks=5&interval_ms=100&first_delay_ms=50")
                .header("authorization", format!("Bearer {token}"));
            meter.stream(user, request).await?;
            Ok(())
        })
    }))
    .set_name("chat")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = GooseConfiguration::parse_args_default_or_exit();
    // The meter owns the run's length: it ends the streams, then goose.
    let run_time = match config.run_time.take() {
        Some(text) => Some(Duration::from_secs(
            goose::util::parse_timespan(&text)
                .ok_or_else(|| format!("--run-time {text:?} is not a time span"))?
                as u64,
        )),
        None => None,
    };
    let mut builder = StreamMeter::builder(Transport::Sse)
        .expected_events(5)
        .expect(Expectations {
            max_ttfb_p99: Some(Duration::from_millis(500)),
            max_gap_p99: Some(Duration::from_millis(400)),
            max_error_rate: Some(0.01),
            ..Expectations::default()
        });
    if let Some(run_time) = run_time {
        builder = builder.run_time(run_time);
    }
    let meter = builder.build()?;

    let attack = GooseAttack::initialize_with_config(config)?.register_scenario(
        scenario!("chat")
            .register_transaction(transaction!(log_in).set_on_start().set_name("log in"))
            .register_transaction(chat(meter.clone())),
    );
    meter.execute(attack).await?;

    let result = meter.finish()?;
    println!("{}", result.markdown());
    if let Some(path) = std::env::var_os("STREAM_REPORT") {
        result.write(std::path::Path::new(&path))?;
    }
    std::process::exit(i32::from(result.exit_code()));
}
