//! The CLI's transaction: one logical stream per goose iteration, as
//! planned (its start time, source address, HTTP client), run as a goose
//! user ([`crate::scenario::goose_user`]), and a failing user's backoff.

use std::sync::Arc;
use std::time::Duration;

use goose::goose::{GooseUser, TransactionError, TransactionResult};

use crate::client::decode::ClientTransport;
use crate::client::{Plan, Shared};
use crate::record::ConnectionEnd;
use crate::scenario::goose_user::{measured_stream, transaction_error, Via};

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
    let via = if shared.plan.transport == ClientTransport::Ws {
        Via::WebSocket(host)
    } else if let Some(target) = &shared.plan.raw {
        Via::Own(target)
    } else {
        Via::Goose
    };
    let outcome = measured_stream(user, shared, via, scheduled, source, false).await;
    if let (Some(schedule), Some(_)) = (&shared.schedule, scheduled) {
        schedule.finished_one();
    }
    let outcome = outcome?;
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
            ConnectionEnd::HttpStatus => outcome.retry,
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
        return Err(transaction_error(outcome.end));
    }
    Ok(())
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
}
