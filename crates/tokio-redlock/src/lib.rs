#![doc = include_str!("../../../README.md")]
//!
//! # Optional features
//!
//! None yet: the crate depends on `redis` (with `tokio-comp`, `script`), `tokio`,
//! `tokio-util`, `thiserror`, `tracing`, `rand`, `futures-util` and `url`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod attempt;
mod config;
mod error;
mod fencing;
mod guard;
mod keys;
mod lock;
mod manager;
mod node;
mod notify;
mod quorum;
mod retry;
mod round;
mod scripts;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DRIFT_FACTOR, DEFAULT_NODE_TIMEOUT, DEFAULT_RETRY_COUNT,
    DEFAULT_RETRY_DELAY, DEFAULT_RETRY_JITTER, DEFAULT_TTL, LockManagerBuilder, MAX_TTL,
};
pub use error::{ConfigError, LockError, NodeError, NodeOutcome, NodeStatus, Operation};
pub use fencing::FencingToken;
pub use guard::{AcquireRequest, LockGuard, LockHandle};
pub use lock::{HolderToken, Lock, LockState};
pub use manager::{LockManager, LockRequest};
