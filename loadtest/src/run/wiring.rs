//! goose wiring: one scenario of one transaction (a stream, as planned);
//! users, ramp and run time handed over typed, as goose's defaults.

use std::sync::Arc;

use goose::client::GooseClientBuilder;
use goose::config::{GooseDefault, GooseDefaultType as _};
use goose::goose::{GooseUser, Scenario, Transaction};
use goose::GooseAttack;

use crate::client::Shared;
use crate::config::{Ramp, RunConfig};

use super::transaction::stream_transaction;
use super::SetupError;

/// goose with one scenario of one transaction: a stream, as planned;
/// users, ramp and run time handed over typed, as goose's defaults.
pub(super) fn goose_attack(
    config: &RunConfig,
    shared: Arc<Shared>,
) -> Result<GooseAttack, SetupError> {
    let host = config.host().to_owned();
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let shared = shared.clone();
        let host = host.clone();
        Box::pin(async move { stream_transaction(user, &shared, &host).await })
    }))
    .set_name("stream");
    let users = usize::try_from(config.users()).unwrap_or(usize::MAX);
    let mut attack: Box<GooseAttack> = GooseAttack::initialize_with_config(config.goose())?
        .register_scenario(Scenario::new("streams").register_transaction(transaction))
        .set_default(GooseDefault::Host, config.host())?
        .set_default(GooseDefault::Users, users)?
        .set_default(GooseDefault::NoResetMetrics, true)?
        .set_client_builder_without_cookies(GooseClientBuilder::new().without_cookies().gzip(false))
        .map(Box::new)?;
    attack = match config.ramp() {
        Ramp::PerSecond(rate) => {
            attack.set_default(GooseDefault::IncreaseRate, rate.to_string().as_str())?
        }
        Ramp::Over(time) => {
            attack.set_default(GooseDefault::IncreaseTime, time.as_secs() as usize)?
        }
    };
    if let Some(run_time) = config.run_time() {
        attack = attack.set_default(GooseDefault::RunTime, run_time.as_secs() as usize)?;
    }
    Ok(*attack)
}
