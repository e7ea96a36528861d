//! The open-files limit against `--max-streams`: every open stream is a
//! socket, so a process whose limit is below `--max-streams` refuses new
//! connections ("too many open files") before trickle's own 429 would. At
//! start the soft limit is raised to the hard one, and a limit still too
//! low is said, with the figures and what to change.

/// Descriptors kept beside the streams (listening sockets, the exporters'
/// connections, files).
pub const MARGIN: u64 = 100;

/// The warning for `max_streams` under the limits `soft` and `hard`, if
/// they cannot hold it.
pub fn warning(max_streams: u64, soft: u64, hard: u64) -> Option<String> {
    let needed = max_streams.saturating_add(MARGIN);
    (needed > soft).then(|| {
        format!(
            "--max-streams {max_streams} needs about {needed} open files, but this process may open {soft} (hard limit {hard}: `ulimit -Hn`): past about {} streams new connections fail with \"too many open files\" before trickle answers 429; raise the hard limit (`ulimit -n`, LimitNOFILE) or lower --max-streams",
            soft.saturating_sub(MARGIN)
        )
    })
}

/// Raises the soft limit to the hard one and returns the warning, if the
/// limits in force then cannot hold `max_streams` (`None` also where the
/// platform does not say).
pub fn check(max_streams: u64) -> Option<String> {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let _ = rlimit::increase_nofile_limit(hard);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    warning(max_streams, soft, hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_beyond_the_limit_are_said_with_the_figures() {
        assert_eq!(warning(10_000, 20_000, 20_000), None);
        assert_eq!(warning(19_900, 20_000, 20_000), None);
        let said = warning(10_000, 1_024, 4_096).unwrap_or_default();
        assert!(said.contains("needs about 10100 open files"), "{said}");
        assert!(said.contains("may open 1024 (hard limit 4096"), "{said}");
        assert!(said.contains("past about 924 streams"), "{said}");
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let _ = check(1);
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((0, 0));
        assert_eq!(soft, hard);
    }
}
