//! The quorum machinery: the pure tally of per-master votes with its early verdict and the
//! validity and drift arithmetic ([`tally`], re-exported here), the per-slot verdict of a
//! semaphore round ([`slots`]), the retry schedule
//! ([`retry`]), the fencing decisions ([`fencing`]), and the round that sends one request
//! to every master and decides as soon as the tally allows ([`round`]).
//!
//! It depends only on the connection layer (`crate::transport`) below it.

pub(crate) mod fencing;
pub(crate) mod retry;
pub(crate) mod round;
pub(crate) mod slots;
mod tally;

pub(crate) use tally::*;
