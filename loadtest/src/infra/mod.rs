//! What a run stands on, apart from measuring: TLS trust, trace context,
//! the open-files limit, the ephemeral port range, the client's own
//! health.

pub mod health;
pub mod limits;
pub mod ports;
pub mod tls;
pub mod trace;
