//! Strategies: which scans to label ([`query`]) and how to adapt the model with them
//! ([`adapt`]). A strategy is named by a string that every front door (CLI, job files,
//! scripts) accepts the same way, through the one [`Resolver`].

pub mod adapt;
pub mod query;
mod resolve;

pub use resolve::{FrontDoor, Resolver};
