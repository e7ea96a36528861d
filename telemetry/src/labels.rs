//! Label values of the stream metrics: which transport carried a stream and
//! how it ended. Both are part of the metric contract (dashboards and alerts
//! select on them), so they are closed sets.

/// The wire transport of a stream; the `transport` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Chunked plain text.
    Text,
    /// Newline-delimited JSON.
    Ndjson,
    /// Server-Sent Events.
    Sse,
    /// WebSocket.
    Ws,
}

impl Transport {
    pub const ALL: [Transport; 4] = [Self::Text, Self::Ndjson, Self::Sse, Self::Ws];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Ndjson => "ndjson",
            Self::Sse => "sse",
            Self::Ws => "ws",
        }
    }

    /// Position in [`Transport::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a stream ended, seen from the whole exchange; the `outcome` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every chunk was sent and the body ended.
    Completed,
    /// The client went away first (dropped before the end was set).
    ClientGone,
    /// The server ended it at its longest allowed life.
    Deadline,
    /// The server ended it because the process is stopping.
    Shutdown,
    /// The body failed.
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Self::Completed,
        Self::ClientGone,
        Self::Deadline,
        Self::Shutdown,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::ClientGone => "client_gone",
            Self::Deadline => "deadline",
            Self::Shutdown => "shutdown",
            Self::Error => "error",
        }
    }

    /// Position in [`Outcome::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_the_all_arrays() {
        for (i, t) in Transport::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{t:?}");
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "{o:?}");
        }
    }
}
