//! One round: the same request sent to every master in parallel, each bounded by its own
//! timeout (inside [`Node`]), with the verdict taken as soon as the tally allows.
//!
//! Replies that arrive after the verdict are not awaited by the caller; a round that still has
//! requests in flight can hand them to the manager's task tracker, which awaits them in the
//! background so nothing is left half-done and every task has an owner.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio_util::task::TaskTracker;

use crate::error::{NodeError, NodeOutcome, NodeStatus};
use crate::node::Node;
use crate::quorum::{Tally, Verdict, Vote};

/// One master's request in flight, resolving to its index and reply.
pub(crate) type Pending<T> = Pin<Box<dyn Future<Output = (usize, Result<T, NodeError>)> + Send>>;

/// A round of requests to a set of masters.
pub(crate) struct Round<T> {
    pending: FuturesUnordered<Pending<T>>,
    /// One slot per master of the manager, `None` until it answers (or when not asked).
    replies: Vec<Option<Result<T, NodeError>>>,
    tally: Tally,
    vote: fn(&Result<T, NodeError>) -> Vote,
}

impl<T: Send + 'static> Round<T> {
    /// Sends `request` to the masters for which `ask` is true. The tally counts only those.
    pub(crate) fn start<F, Fut>(
        nodes: &[Arc<Node>],
        ask: impl Fn(usize) -> bool,
        vote: fn(&Result<T, NodeError>) -> Vote,
        request: F,
    ) -> Self
    where
        F: Fn(Arc<Node>) -> Fut,
        Fut: Future<Output = Result<T, NodeError>> + Send + 'static,
    {
        let pending: FuturesUnordered<Pending<T>> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| ask(*i))
            .map(|(i, node)| {
                let fut = request(Arc::clone(node));
                let pending: Pending<T> = Box::pin(async move { (i, fut.await) });
                pending
            })
            .collect();
        let tally = Tally::new(pending.len());
        Self {
            pending,
            replies: nodes.iter().map(|_| None).collect(),
            tally,
            vote,
        }
    }

    /// Waits for the next reply; returns its master index, or `None` when all have answered.
    pub(crate) async fn next_reply(&mut self) -> Option<usize> {
        let (i, reply) = self.pending.next().await?;
        self.tally.record((self.vote)(&reply));
        if let Some(slot) = self.replies.get_mut(i) {
            *slot = Some(reply);
        }
        Some(i)
    }

    /// Waits until the verdict is known (a quorum said yes, or can no longer), then takes in
    /// the replies that have already arrived without waiting for more: on a fast network the
    /// last master has usually answered too, and then no background task is needed for it.
    pub(crate) async fn decide(&mut self) -> Verdict {
        loop {
            if let Some(verdict) = self.tally.verdict() {
                self.take_ready();
                return verdict;
            }
            if self.next_reply().await.is_none() {
                // Unreachable: with every reply in, the tally always has a verdict.
                return self.tally.verdict().unwrap_or(Verdict::Lost);
            }
        }
    }

    /// Records every reply that is ready now, without waiting.
    fn take_ready(&mut self) {
        while let Some(Some((i, reply))) = self.pending.next().now_or_never() {
            self.tally.record((self.vote)(&reply));
            if let Some(slot) = self.replies.get_mut(i) {
                *slot = Some(reply);
            }
        }
    }

    /// Waits for every reply.
    pub(crate) async fn settle(&mut self) {
        while self.next_reply().await.is_some() {}
    }

    /// The running tally.
    pub(crate) fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The reply of master `i`, if it answered.
    pub(crate) fn reply(&self, i: usize) -> Option<&Result<T, NodeError>> {
        self.replies.get(i).and_then(Option::as_ref)
    }

    /// The replies received so far, with their master indexes.
    pub(crate) fn replies(&self) -> impl Iterator<Item = (usize, &Result<T, NodeError>)> {
        self.replies
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
    }

    /// One outcome per master of the manager, in configuration order.
    pub(crate) fn outcomes(
        &self,
        nodes: &[Arc<Node>],
        status: impl Fn(&T) -> NodeStatus,
    ) -> Vec<NodeOutcome> {
        nodes
            .iter()
            .zip(&self.replies)
            .map(|(node, reply)| NodeOutcome {
                master: Arc::clone(node.address()),
                status: match reply {
                    Some(Ok(r)) => status(r),
                    Some(Err(e)) => NodeStatus::Failed(e.clone()),
                    None => NodeStatus::NotAwaited,
                },
            })
            .collect()
    }

    /// The requests still in flight, for a caller that must act on each late reply.
    pub(crate) fn into_pending(self) -> FuturesUnordered<Pending<T>> {
        self.pending
    }

    /// Hands the requests still in flight to `tracker`, which awaits them in the background
    /// (each is bounded by its master's timeout). Without a runtime they are dropped.
    pub(crate) fn finish_in_background(self, tracker: &TaskTracker) {
        if self.pending.is_empty() {
            return;
        }
        let mut pending = self.pending;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(
                tracker.track_future(async move { while pending.next().await.is_some() {} }),
            );
        }
    }
}
