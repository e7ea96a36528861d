//! One logical stream per goose iteration: a user's own HTTP client, the
//! stream run, goose's custom rows for what goose cannot time, and a
//! failing user's backoff.

use std::sync::Arc;
use std::time::Duration;

use goose::goose::{GooseUser, TransactionError, TransactionResult};

use crate::client::decode::ClientTransport;
use crate::client::http::HttpConnector;
use crate::client::ws::WsConnector;
use crate::client::{run_stream, Plan, Shared};
use crate::record::ConnectionEnd;

use super::plan::http_client;

/// Pause after a first failed stream (a failed connection, an error
/// status without `Retry-After`) before the user tries again; it doubles
/// with each failure in a row, up to [`ERROR_PAUSE_MAX`].
const ERROR_PAUSE: Duration = Duration::from_millis(100);
const ERROR_PAUSE_MAX: Duration = Duration::from_secs(10);
/// The longest `Retry-After` obeyed.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);

/// The pause before a user's next stream after `failures` failed in a
/// row (at least 1): the server's `Retry-After` when it sent one, else
/// [`ERROR_PAUSE`] doubled per failure up to [`ERROR_PAUSE_MAX`], with
/// jitter (`jitter` in 0..1 picks between half and all of it) so users
/// that failed together do not all come back together.
fn error_pause(failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(after) = retry_after {
        return after.min(RETRY_AFTER_MAX);
    }
    let doublings = failures.saturating_sub(1).min(16);
    let full = ERROR_PAUSE
        .saturating_mul(1 << doublings)
        .min(ERROR_PAUSE_MAX);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// What a goose user keeps between its streams: that it has the run's
/// HTTP client (set once), and how many of its streams failed in a row.
#[derive(Debug, Clone, Default)]
struct UserState {
    failures: u32,
}

/// Gives the user, once, the run's HTTP client (or one bound to `source`):
/// trusting what the plan trusts, and without a request timeout (goose's
/// client has one, and reqwest then times every body frame against it;
/// the run's deadline and `--idle-timeout` end streams instead).
fn own_client(
    user: &mut GooseUser,
    plan: &Plan,
    source: Option<std::net::IpAddr>,
) -> TransactionResult {
    if user.get_session_data::<UserState>().is_some() {
        return Ok(());
    }
    user.client = match source {
        None => plan.client.clone(),
        Some(source) => http_client(&plan.trust, Some(source))
            .map_err(|e| Box::new(TransactionError::Custom(format!("HTTP client: {e}"))))?,
    };
    user.set_session_data(UserState::default());
    Ok(())
}

pub(super) async fn stream_transaction(
    user: &mut GooseUser,
    shared: &Arc<Shared>,
    host: &str,
) -> TransactionResult {
    if shared.run_over.is_cancelled() {
        // The run is over: wait for goose to stop this user rather than
        // opening streams that would end at once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Ok(());
    }
    let Ok(scheduled) = shared.wait_start().await else {
        return Ok(());
    };
    let source = shared.plan.source_for(user.weighted_users_index);
    own_client(user, &shared.plan, source)?;
    let lane = shared.collector.lane_of(user.weighted_users_index);
    let outcome = if shared.plan.transport == ClientTransport::Ws {
        let mut connector = WsConnector::from_host(host, source, shared.plan.ws_tls.clone());
        run_stream(shared, &mut connector, scheduled, lane).await
    } else if let Some(target) = &shared.plan.raw {
        let mut connector = crate::client::raw::RawConnector {
            user: &mut *user,
            target,
            source,
        };
        run_stream(shared, &mut connector, scheduled, lane).await
    } else {
        run_stream(
            shared,
            &mut HttpConnector { user: &mut *user },
            scheduled,
            lane,
        )
        .await
    };
    for (i, conn) in outcome.connections.iter().enumerate() {
        for row in goose_rows(conn, i > 0) {
            user.record_custom_request_duration(
                row.method,
                row.name,
                row.value,
                row.success,
                conn.status,
                row.why,
            )
            .await?;
        }
    }
    // A refused stream comes back after the server's Retry-After, and any
    // other failure after a pause that grows while the user keeps failing,
    // as a polite client would, rather than spinning on an error (a 400
    // with no pause was ~5,000 requests a second per user against a local
    // server; a fixed 100 ms, 292 refused WebSocket upgrades in 9 s from 4
    // users).
    let failed = matches!(
        outcome.end,
        ConnectionEnd::HttpStatus | ConnectionEnd::ConnectError | ConnectionEnd::ProtocolError
    );
    let failures = user.get_session_data_mut::<UserState>().map_or(0, |state| {
        state.failures = if failed { state.failures + 1 } else { 0 };
        state.failures
    });
    if failed && !shared.run_over.is_cancelled() {
        let retry_after = match outcome.end {
            ConnectionEnd::HttpStatus => outcome.connections.last().and_then(|c| c.retry),
            _ => None,
        };
        let pause = error_pause(failures.max(1), retry_after, fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(pause) => {
                shared.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            () = shared.run_over.cancelled() => {}
        }
    }
    if outcome.end.is_error() {
        return Err(Box::new(TransactionError::Custom(format!(
            "stream ended: {}",
            outcome.end.as_str()
        ))));
    }
    Ok(())
}

/// One custom goose row: what goose cannot time itself.
#[derive(Debug, PartialEq)]
struct GooseRow<'a> {
    method: &'static str,
    name: &'static str,
    value: Duration,
    success: bool,
    why: Option<&'a str>,
}

/// The goose rows of one finished connection (`resumed`: not a stream's
/// first): `STREAM ttfb first event`, `STREAM stream lifetime` (a success
/// status), `STREAM resume`, and for a completed LLM request `LLM ttft`,
/// `LLM tpot`, `LLM e2e` (so goose's thresholds apply to them).
fn goose_rows(conn: &crate::record::Connection, resumed: bool) -> Vec<GooseRow<'_>> {
    let success = !conn.end.is_some_and(|e| e.is_error());
    let stream = |name, value| GooseRow {
        method: "STREAM",
        name,
        value,
        success,
        why: None,
    };
    let mut rows = Vec::new();
    if let Some(ttfb) = conn.first_event {
        rows.push(stream("ttfb first event", ttfb));
    }
    if conn.status.is_some_and(|s| s < 300) {
        rows.push(GooseRow {
            why: conn.end.map(ConnectionEnd::as_str),
            ..stream("stream lifetime", conn.lifetime)
        });
    }
    if let Some(figures) = conn.request_figures() {
        // The first event of an LLM request is its first token.
        let finish = conn.llm.as_ref().and_then(|l| l.finish_reason.as_deref());
        for (name, value) in [
            ("ttft", figures.ttft),
            ("tpot", figures.tpot),
            ("e2e", Some(figures.e2e)),
        ] {
            if let Some(value) = value {
                rows.push(GooseRow {
                    method: "LLM",
                    name,
                    value,
                    success: true,
                    why: finish,
                });
            }
        }
    }
    if resumed {
        if let Some(ttfb) = conn.first_event {
            rows.push(stream("resume", ttfb));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_users_back_off_with_jitter_or_obey_retry_after() {
        let ms = Duration::from_millis;
        // (failures in a row, Retry-After, jitter) -> pause
        let cases = [
            ((1, None, 1.0), ms(100)),
            ((1, None, 0.0), ms(50)),
            ((2, None, 1.0), ms(200)),
            ((4, None, 1.0), ms(800)),
            ((4, None, 0.5), ms(600)),
            ((7, None, 1.0), ms(6_400)),
            ((8, None, 1.0), ms(10_000)),
            ((u32::MAX, None, 1.0), ms(10_000)),
            ((3, Some(ms(2_000)), 0.0), ms(2_000)),
            ((1, Some(Duration::from_secs(3_600)), 1.0), ms(30_000)),
        ];
        for ((failures, retry_after, jitter), pause) in cases {
            assert_eq!(
                error_pause(failures, retry_after, jitter),
                pause,
                "{failures} {retry_after:?} {jitter}"
            );
        }
    }
    use crate::llm::measure::LlmConnection;
    use crate::record::Connection;

    #[test]
    fn goose_rows_of_a_stream_a_resume_and_an_llm_request() {
        let ms = Duration::from_millis;
        let stream = Connection {
            status: Some(200),
            first_event: Some(ms(5)),
            lifetime: ms(900),
            end: Some(ConnectionEnd::Truncated),
            ..Connection::default()
        };
        let rows = goose_rows(&stream, true);
        let names: Vec<_> = rows.iter().map(|r| (r.method, r.name, r.success)).collect();
        assert_eq!(
            names,
            [
                ("STREAM", "ttfb first event", false),
                ("STREAM", "stream lifetime", false),
                ("STREAM", "resume", false),
            ]
        );
        assert_eq!(rows[1].why, Some("truncated"));

        let refused = Connection {
            status: Some(429),
            end: Some(ConnectionEnd::HttpStatus),
            ..Connection::default()
        };
        assert!(goose_rows(&refused, false).is_empty());

        let llm = Connection {
            status: Some(200),
            first_event: Some(ms(100)),
            lifetime: ms(600),
            end: Some(ConnectionEnd::Completed),
            llm: Some(LlmConnection {
                error_code: None,
                output_chunks: 11,
                usage: None,
                finish_reason: Some("length".to_owned()),
            }),
            ..Connection::default()
        };
        let rows = goose_rows(&llm, false);
        let llm_rows: Vec<_> = rows
            .iter()
            .filter(|r| r.method == "LLM")
            .map(|r| (r.name, r.value, r.why))
            .collect();
        assert_eq!(
            llm_rows,
            [
                ("ttft", ms(100), Some("length")),
                ("tpot", ms(50), Some("length")),
                ("e2e", ms(600), Some("length")),
            ]
        );
    }
}
