//! The open-files limit: every stream is a socket, so it bounds how many
//! streams one process holds. At start the soft limit is raised to the
//! hard one; a run that cannot fit under the hard limit is refused before
//! it starts, naming the limit and the remedies.

/// Files a process opens beside its streams (runtime, metrics, reports,
/// goose's own): what is kept back from the limit.
pub const MARGIN: u64 = 100;

/// The open-files limits, after raising the soft one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

impl OpenFiles {
    /// Streams one process can hold under these limits.
    pub fn streams(&self) -> u64 {
        self.soft.saturating_sub(MARGIN)
    }
}

/// Raises the soft open-files limit to the hard one; the limits in force
/// after (`None` where the platform does not say).
pub fn raise_open_files() -> Option<OpenFiles> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let _ = rlimit::increase_nofile_limit(hard);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    Some(OpenFiles { soft, hard })
}

/// Streams asked of one process that its limit cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{flag} {asked} needs about {needed} open files in one process, but this one may open at most {soft} (hard limit {hard}: `ulimit -Hn`); spread the streams with --processes {processes}, or raise the hard limit (`ulimit -n` as root, or the service's LimitNOFILE)"
)]
pub struct TooManyStreams {
    pub flag: &'static str,
    pub asked: u64,
    pub needed: u64,
    pub soft: u64,
    pub hard: u64,
    /// The fewest processes that would hold them.
    pub processes: u64,
}

/// Whether `asked` streams per process (of `flag`, split over
/// `processes`) fit under `limits`.
pub fn check(
    limits: OpenFiles,
    flag: &'static str,
    asked: u64,
    processes: u64,
) -> Result<(), TooManyStreams> {
    let per_process = asked.div_ceil(processes.max(1));
    if per_process <= limits.streams() {
        return Ok(());
    }
    Err(TooManyStreams {
        flag,
        asked,
        needed: per_process + MARGIN,
        soft: limits.soft,
        hard: limits.hard,
        processes: asked.div_ceil(limits.streams().max(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_fit_under_the_limit_less_a_margin_or_say_how_to_split() {
        let limits = OpenFiles {
            soft: 20_000,
            hard: 20_000,
        };
        assert!(check(limits, "--users", 19_900, 1).is_ok());
        let err = check(limits, "--users", 25_000, 1).unwrap_err();
        assert_eq!((err.needed, err.processes), (25_100, 2));
        let text = err.to_string();
        assert!(
            text.contains("--users 25000")
                && text.contains("ulimit -Hn")
                && text.contains("--processes 2"),
            "{text}"
        );
        assert!(check(limits, "--users", 25_000, 2).is_ok(), "split in two");
        assert!(check(limits, "--max", 39_801, 2).is_err());
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limits = raise_open_files().unwrap();
        assert_eq!(limits.soft, limits.hard);
    }
}
