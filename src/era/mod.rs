//! The 2026-07-28 era's envelope, shared by the two era adapters: old clients → modern
//! servers (upstream) and modern clients → any server (downstream). Transport-independent
//! and pure: bodies in, bodies/headers/errors out. Not wired into the bridge yet.
//!
//! See `docs/ERA-2026.md` for the wire facts and how the adapters use these modules.

pub mod base64;
pub mod codes;
pub mod discover;
pub mod headers;
pub mod listen;
pub mod meta;
pub mod mrtr;
pub mod result;
pub mod splice;
pub mod validate;
