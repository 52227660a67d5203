//! One round: the same request sent to every master in parallel, each bounded by its own
//! timeout (inside [`Node`]), with the verdict taken as soon as the tally allows.
//!
//! Replies that arrive after the verdict are not awaited by the caller. A request that never
//! left this process (still waiting for a connection or a slot) is simply dropped: it cannot
//! have changed anything. One that was sent can be handed to the manager's task tracker, which
//! awaits it in the background (bounded by the master's timeout), or to a caller that acts on
//! its late reply.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::error::{NodeError, NodeOutcome, NodeStatus};
use crate::quorum::{Tally, Verdict, Vote};
use crate::transport::node::{Adopted, Call, Node};

/// One master's request, resolving to its index and reply.
pub(crate) struct Pending<T> {
    index: usize,
    /// Set by the node when the request is handed to the connection.
    sent: Arc<AtomicBool>,
    future: Pin<Box<dyn Future<Output = Result<T, NodeError>> + Send>>,
    /// The master, asked for a place when an unsent request outlives its round.
    node: Arc<Node>,
    /// The place an unsent request holds while it waits for its master's connection.
    adopted: Option<Adopted>,
}

impl<T> Pending<T> {
    /// Whether the request may have reached the master.
    pub(crate) fn was_sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }

    /// The master's index.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The flag the node sets when the request is handed to the connection.
    pub(crate) fn sent_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.sent)
    }
}

impl<T> Future for Pending<T> {
    type Output = (usize, Result<T, NodeError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        self.future.as_mut().poll(cx).map(|reply| (index, reply))
    }
}

/// A round of requests to a set of masters.
pub(crate) struct Round<T> {
    pending: FuturesUnordered<Pending<T>>,
    /// One slot per master of the manager, `None` until it answers (or when not asked).
    replies: Vec<Option<Result<T, NodeError>>>,
    tally: Tally,
    vote: fn(&Result<T, NodeError>) -> Vote,
    /// One flag per master asked: set once its request was handed to the connection.
    sent: Vec<Option<Arc<AtomicBool>>>,
}

impl<T: Send + 'static> Round<T> {
    /// Sends `request` to the masters for which `ask` is true. The tally counts only those.
    /// `request` gets the master and the [`Call`] to pass on (its queue deadline is
    /// `queue_until`).
    pub(crate) fn start<F, Fut>(
        nodes: &[Arc<Node>],
        ask: impl Fn(usize) -> bool,
        vote: fn(&Result<T, NodeError>) -> Vote,
        queue_until: Instant,
        request: F,
    ) -> Self
    where
        F: Fn(Arc<Node>, Call) -> Fut,
        Fut: Future<Output = Result<T, NodeError>> + Send + 'static,
    {
        let mut flags: Vec<Option<Arc<AtomicBool>>> = nodes.iter().map(|_| None).collect();
        let pending: FuturesUnordered<Pending<T>> = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| ask(*i))
            .map(|(index, node)| {
                let sent = Arc::new(AtomicBool::new(false));
                if let Some(slot) = flags.get_mut(index) {
                    *slot = Some(Arc::clone(&sent));
                }
                let call = Call {
                    queue_until,
                    sent: Some(Arc::clone(&sent)),
                    priority: false,
                    asking: false,
                };
                Pending {
                    index,
                    sent,
                    future: Box::pin(request(Arc::clone(node), call)),
                    node: Arc::clone(node),
                    adopted: None,
                }
            })
            .collect();
        let tally = Tally::new(pending.len());
        Self {
            pending,
            replies: nodes.iter().map(|_| None).collect(),
            tally,
            vote,
            sent: flags,
        }
    }

    /// The sent flags of every master (`None` for a master not asked).
    pub(crate) fn sent_flags(&self) -> Vec<Option<Arc<AtomicBool>>> {
        self.sent.clone()
    }

    /// Whether master `i`'s request may have reached it (it was handed to the connection).
    pub(crate) fn was_sent(&self, i: usize) -> bool {
        self.sent
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.load(Ordering::Acquire))
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

    /// [`decide`](Self::decide) with another rule: `verdict` reads the round (its replies
    /// and its tally's pending count) and says when it is decided, as a semaphore's round
    /// is decided per slot rather than by the yes votes; `otherwise` is the verdict when
    /// every reply is in and the rule still says nothing. Takes in the replies already
    /// there once decided.
    pub(crate) async fn decide_with<V>(
        &mut self,
        verdict: impl Fn(&Self) -> Option<V>,
        otherwise: V,
    ) -> V {
        loop {
            if let Some(v) = verdict(self) {
                self.take_ready();
                return v;
            }
            if self.next_reply().await.is_none() {
                return verdict(self).unwrap_or(otherwise);
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

    /// One outcome per master of the manager, in configuration order. A master that had not
    /// answered is "not awaited", unless its request never left and the master is known to
    /// fail every request at once with a permanent cause (e.g. it is the same server as
    /// another master): that cause is its outcome, whichever master answered first.
    pub(crate) fn outcomes(
        &self,
        nodes: &[Arc<Node>],
        status: impl Fn(&T) -> NodeStatus,
    ) -> Vec<NodeOutcome> {
        nodes
            .iter()
            .zip(&self.replies)
            .enumerate()
            .map(|(i, (node, reply))| NodeOutcome {
                master: Arc::clone(node.address()),
                status: match reply {
                    Some(Ok(r)) => status(r),
                    Some(Err(e)) => NodeStatus::Failed(e.clone()),
                    None if self.asked(i) && !self.was_sent(i) => node
                        .known_failure()
                        .map_or(NodeStatus::NotAwaited, NodeStatus::Failed),
                    None => NodeStatus::NotAwaited,
                },
            })
            .collect()
    }

    /// Whether master `i` was asked in this round.
    fn asked(&self, i: usize) -> bool {
        self.sent.get(i).is_some_and(Option::is_some)
    }

    /// The requests still in flight that may matter, for a caller that must act on each
    /// late reply: those sent, and a bounded number of unsent ones waiting for a connection
    /// being opened (see [`Node::adopt`]); the others never left and are dropped.
    pub(crate) fn into_pending(self) -> FuturesUnordered<Pending<T>> {
        self.pending
            .into_iter()
            .filter_map(|mut p| {
                if p.was_sent() {
                    return Some(p);
                }
                p.adopted = Some(p.node.adopt()?);
                Some(p)
            })
            .collect()
    }

    /// The masters whose request is still unanswered (sent or not).
    pub(crate) fn unanswered(&self) -> Vec<usize> {
        self.pending.iter().map(Pending::index).collect()
    }

    /// Hands the requests still in flight that were sent to `tracker`, which awaits them in
    /// the background (each is bounded by its master's timeout); those never sent are
    /// dropped. Without a runtime they are dropped too.
    pub(crate) fn finish_in_background(self, tracker: &TaskTracker) {
        let mut pending = self.into_pending();
        if pending.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(
                tracker.track_future(async move { while pending.next().await.is_some() {} }),
            );
        }
    }
}
