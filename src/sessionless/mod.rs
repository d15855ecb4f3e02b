//! Serving sessionless (2026-07-28) clients in front of sessionful upstreams: each request is
//! carried by an upstream session the bridge keeps, lent to one request at a time, so that a
//! message the upstream sends without saying which request it is for (a legacy SSE or stdio
//! server) belongs to exactly one request. See docs/ARCHITECTURE.md.

pub mod lent;
pub mod listen;
pub mod pool;
pub mod ticket;

pub use lent::{Inbox, Lent};
pub use listen::Listening;
pub use pool::{Key, LendError, Pinned, Pool};
pub use ticket::Sealer;
