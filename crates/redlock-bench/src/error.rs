//! The one error type of the benchmark: what failed, in words.

use std::fmt;

/// Why the benchmark could not run (or finish) a step.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// `redis-server` could not be started or reached.
    Server(String),
    /// A contender could not be set up (bad URL, connection refused).
    Setup(String),
    /// A command-line option was wrong.
    Usage(String),
    /// Writing the report or the plot failed.
    Output(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(m) => write!(f, "redis-server: {m}"),
            Self::Setup(m) => write!(f, "setup: {m}"),
            Self::Usage(m) => write!(f, "usage: {m}"),
            Self::Output(m) => write!(f, "output: {m}"),
        }
    }
}

impl std::error::Error for BenchError {}
