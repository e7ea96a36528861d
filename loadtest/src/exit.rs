//! Every exit code trickle-load ends with, in one place (a contract: CI
//! gates on them; docs/load-testing.md and docs/capacity.md list them).

/// A run: every check passed. `capacity`: the answer was found.
pub(crate) const PASS: u8 = 0;
/// A run: a check failed. `capacity`: not even `--start` met the SLOs.
pub(crate) const FAIL: u8 = 1;
/// A usage or set-up error: nothing was measured, or not as asked.
pub(crate) const SETUP: u8 = 2;
/// `capacity`: inconclusive, the client itself was saturated.
pub(crate) const INCONCLUSIVE: u8 = 3;
/// A run: no check failed but one could not be decided. `capacity`: the
/// answer could not be resolved (3 wins over it).
pub(crate) const UNRESOLVED: u8 = 4;
