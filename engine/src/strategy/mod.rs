//! Strategies: which scans to label ([`query`]) and, later, how to adapt with them.
//! A strategy is named by a string that every front door (CLI, job files, scripts) accepts.

pub mod query;
