//! The connection layer: one master each ([`node`]): its connection's lifecycle (opened off
//! the request path, with backoff), admission and per-request timeouts, the scripts' calls
//! and the classification of every reply; what a member URL names ([`member`]: a server,
//! a Unix socket, a Sentinel group with its lookup in [`sentinel`] and failover watch in
//! [`failover`], or a Redis Cluster routed by [`cluster`]); and TLS ([`tls`]).
//!
//! It knows nothing of quorums or locks: the layers above ask it for one request to one
//! master and get a classified answer.

pub(crate) mod cluster;
pub(crate) mod failover;
pub(crate) mod member;
pub(crate) mod node;
pub(crate) mod redact;
pub(crate) mod sentinel;
pub(crate) mod tls;
