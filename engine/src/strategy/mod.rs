//! Strategies: which scans to label ([`query`]) and how to adapt the model with them
//! ([`adapt`]). A strategy is named by a string that every front door (CLI, job files,
//! scripts) accepts the same way.

pub mod adapt;
pub mod query;
