//! The life of the node pool as a state machine without I/O, on the crate's contract
//! (`handle(Input, now)`, then `poll_output()` until `None`): inputs are what happened
//! (start, nodes ready, heartbeats, exits, spawn failures, a timeout), outputs are what to do
//! (spawn, kill, recover the rooms of a lost node) and, last, when the next heartbeat
//! deadline falls ([`Output::Timeout`]). The supervisor's `node_watch` carries them out.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Identifies a node process for the life of the supervisor (a respawned node gets a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// Why a node is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnOrigin {
    /// This machine, to keep the warm count.
    Warm,
    /// This machine, to replace a node that was lost (or failed to start).
    Replacement,
    /// Room placement, because every worker was full.
    Placement,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The supervisor starts: the warm nodes are wanted.
    Start,
    /// A node connected and said hello.
    NodeReady(NodeId, SpawnOrigin),
    /// A spawn this machine asked for failed.
    SpawnFailed,
    /// A load report (the heartbeat) of a node arrived at this instant.
    Heartbeat(NodeId, Instant),
    /// A node's process exited or its socket closed (reported once or twice).
    NodeExited(NodeId),
    /// A drained node was asked to stop: not a death, and its replacement starts at once.
    NodeRetired(NodeId),
    /// This host stops (it is drained): no node is started any more.
    Leaving,
    /// The instant of the last [`Output::Timeout`] came (or passed).
    Timeout,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Start a node after `delay`.
    Spawn {
        /// Backoff before starting it.
        delay: Duration,
        /// Why.
        origin: SpawnOrigin,
    },
    /// Kill a hung node (its exit comes back as [`Input::NodeExited`]).
    Kill(NodeId),
    /// The node is gone: tell the peers of its rooms (`roomMoved`) and forget them.
    RoomsLost(NodeId),
    /// Nothing else now: give [`Input::Timeout`] at this instant (the first heartbeat
    /// deadline), unless another input comes first.
    Timeout(Instant),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Ready { last_heard: Instant },
    Killing,
}

/// Deaths closer together than this count towards the backoff.
const DEATH_WINDOW: Duration = Duration::from_secs(10);
/// Deaths in the window that are replaced at once; later ones wait.
const FREE_RESPAWNS: usize = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The pool's lifecycle.
#[derive(Debug)]
pub struct Lifecycle {
    warm: u32,
    heartbeat_timeout: Duration,
    nodes: BTreeMap<NodeId, NodeState>,
    starting: u32,
    deaths: VecDeque<Instant>,
    outputs: VecDeque<Output>,
    /// Whether the last drain ended with its timeout.
    timeout_told: bool,
}

impl Lifecycle {
    /// A pool that keeps `warm` nodes and kills one silent for `heartbeat_timeout`.
    pub fn new(warm: u32, heartbeat_timeout: Duration) -> Self {
        Self {
            warm,
            heartbeat_timeout,
            nodes: BTreeMap::new(),
            starting: 0,
            deaths: VecDeque::new(),
            outputs: VecDeque::new(),
            timeout_told: true,
        }
    }

    /// The next thing to do, oldest first; once nothing else is queued, the next heartbeat
    /// deadline if a node is watched, then `None` until the next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if std::mem::replace(&mut self.timeout_told, true) {
            return None;
        }
        self.nodes
            .values()
            .filter_map(|state| match state {
                NodeState::Ready { last_heard } => Some(*last_heard + self.heartbeat_timeout),
                NodeState::Killing => None,
            })
            .min()
            .map(Output::Timeout)
    }

    /// Nodes ready or being started by this machine.
    pub fn nodes(&self) -> usize {
        self.nodes.len() + self.starting as usize
    }

    /// Takes one input at `now`; what to do follows from [`Lifecycle::poll_output`].
    pub fn handle(&mut self, input: Input, now: Instant) {
        self.timeout_told = false;
        let outputs = self.decide(input, now);
        self.outputs.extend(outputs);
    }

    fn decide(&mut self, input: Input, now: Instant) -> Vec<Output> {
        match input {
            Input::Start => self.top_up(Duration::ZERO, SpawnOrigin::Warm),
            Input::NodeReady(id, origin) => {
                if origin != SpawnOrigin::Placement {
                    self.starting = self.starting.saturating_sub(1);
                }
                self.nodes.insert(id, NodeState::Ready { last_heard: now });
                Vec::new()
            }
            Input::SpawnFailed => {
                self.starting = self.starting.saturating_sub(1);
                self.deaths.push_back(now);
                let delay = self.backoff(now);
                self.top_up(delay, SpawnOrigin::Replacement)
            }
            Input::Heartbeat(id, at) => {
                if let Some(NodeState::Ready { last_heard }) = self.nodes.get_mut(&id) {
                    *last_heard = (*last_heard).max(at);
                }
                Vec::new()
            }
            Input::NodeRetired(id) => {
                self.nodes.remove(&id);
                self.top_up(Duration::ZERO, SpawnOrigin::Warm)
            }
            Input::Leaving => {
                self.warm = 0;
                Vec::new()
            }
            Input::NodeExited(id) => {
                if self.nodes.remove(&id).is_none() {
                    // The second report of the same death, or a node never seen ready.
                    return Vec::new();
                }
                self.deaths.push_back(now);
                let delay = self.backoff(now);
                let mut actions = vec![Output::RoomsLost(id)];
                actions.extend(self.top_up(delay, SpawnOrigin::Replacement));
                actions
            }
            Input::Timeout => {
                let timeout = self.heartbeat_timeout;
                let mut actions = Vec::new();
                for (id, state) in &mut self.nodes {
                    if let NodeState::Ready { last_heard } = *state {
                        if now.saturating_duration_since(last_heard) > timeout {
                            *state = NodeState::Killing;
                            actions.push(Output::Kill(*id));
                        }
                    }
                }
                actions
            }
        }
    }

    fn top_up(&mut self, delay: Duration, origin: SpawnOrigin) -> Vec<Output> {
        let mut actions = Vec::new();
        while (self.nodes() as u32) < self.warm {
            self.starting += 1;
            actions.push(Output::Spawn { delay, origin });
        }
        actions
    }

    fn backoff(&mut self, now: Instant) -> Duration {
        while self
            .deaths
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > DEATH_WINDOW)
        {
            self.deaths.pop_front();
        }
        match self.deaths.len().checked_sub(FREE_RESPAWNS) {
            None | Some(0) => Duration::ZERO,
            Some(extra) => {
                let factor = 1u32 << (extra.min(16) as u32 - 1);
                (Duration::from_millis(250) * factor).min(MAX_BACKOFF)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_secs(3);

    fn warm_now() -> Output {
        Output::Spawn {
            delay: Duration::ZERO,
            origin: SpawnOrigin::Warm,
        }
    }

    fn replacement_now() -> Output {
        Output::Spawn {
            delay: Duration::ZERO,
            origin: SpawnOrigin::Replacement,
        }
    }

    /// Feeds `input` and takes what follows, the timeout aside.
    fn run(pool: &mut Lifecycle, input: Input, now: Instant) -> Vec<Output> {
        pool.handle(input, now);
        std::iter::from_fn(|| pool.poll_output())
            .filter(|o| !matches!(o, Output::Timeout(_)))
            .collect()
    }

    fn ready_pool(warm: u32, t0: Instant) -> Lifecycle {
        let mut pool = Lifecycle::new(warm, HB);
        assert_eq!(
            run(&mut pool, Input::Start, t0),
            vec![warm_now(); warm as usize]
        );
        for id in 1..=warm {
            run(
                &mut pool,
                Input::NodeReady(NodeId(id), SpawnOrigin::Warm),
                t0,
            );
        }
        assert_eq!(pool.nodes(), warm as usize);
        pool
    }

    #[test]
    fn starts_the_warm_nodes_and_nothing_more() {
        let t0 = Instant::now();
        let mut pool = ready_pool(2, t0);
        assert!(run(&mut pool, Input::Timeout, t0 + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn an_exit_loses_the_rooms_and_replaces_the_node_once() {
        let t0 = Instant::now();
        let mut pool = ready_pool(2, t0);
        let actions = run(&mut pool, Input::NodeExited(NodeId(1)), t0);
        assert_eq!(
            actions,
            vec![Output::RoomsLost(NodeId(1)), replacement_now()]
        );
        // The same death reported again (socket EOF, then process exit) changes nothing.
        assert!(run(&mut pool, Input::NodeExited(NodeId(1)), t0).is_empty());
        assert_eq!(pool.nodes(), 2);
    }

    #[test]
    fn a_silent_node_is_killed_once_then_replaced_when_it_exits() {
        let t0 = Instant::now();
        let mut pool = ready_pool(2, t0);
        run(
            &mut pool,
            Input::Heartbeat(NodeId(2), t0 + Duration::from_secs(3)),
            t0,
        );
        let actions = run(&mut pool, Input::Timeout, t0 + Duration::from_millis(3500));
        assert_eq!(actions, vec![Output::Kill(NodeId(1))]);
        assert!(
            run(&mut pool, Input::Timeout, t0 + Duration::from_secs(5)).is_empty(),
            "killed once"
        );
        let actions = run(
            &mut pool,
            Input::NodeExited(NodeId(1)),
            t0 + Duration::from_secs(5),
        );
        assert_eq!(
            actions,
            vec![Output::RoomsLost(NodeId(1)), replacement_now()]
        );
    }

    #[test]
    fn a_node_that_dies_while_starting_is_started_again() {
        let t0 = Instant::now();
        let mut pool = Lifecycle::new(1, HB);
        assert_eq!(run(&mut pool, Input::Start, t0), vec![warm_now()]);
        assert_eq!(
            run(&mut pool, Input::SpawnFailed, t0),
            vec![replacement_now()]
        );
        // Its exit, if reported, is of a node never seen ready: nothing to recover.
        assert!(run(&mut pool, Input::NodeExited(NodeId(1)), t0).is_empty());
        run(
            &mut pool,
            Input::NodeReady(NodeId(2), SpawnOrigin::Warm),
            t0,
        );
        assert_eq!(pool.nodes(), 1);
    }

    #[test]
    fn two_deaths_at_once_are_both_replaced() {
        let t0 = Instant::now();
        let mut pool = ready_pool(2, t0);
        let mut actions = run(&mut pool, Input::NodeExited(NodeId(1)), t0);
        actions.extend(run(&mut pool, Input::NodeExited(NodeId(2)), t0));
        assert_eq!(
            actions,
            vec![
                Output::RoomsLost(NodeId(1)),
                replacement_now(),
                Output::RoomsLost(NodeId(2)),
                replacement_now()
            ]
        );
    }

    #[test]
    fn nodes_that_keep_dying_are_replaced_with_growing_backoff() {
        let t0 = Instant::now();
        let mut pool = ready_pool(1, t0);
        let mut delays = Vec::new();
        for i in 0..6u32 {
            let now = t0 + Duration::from_millis(100 * u64::from(i));
            for action in run(&mut pool, Input::NodeExited(NodeId(i + 1)), now) {
                if let Output::Spawn { delay, .. } = action {
                    delays.push(delay);
                }
            }
            run(
                &mut pool,
                Input::NodeReady(NodeId(i + 2), SpawnOrigin::Warm),
                now,
            );
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![0, 0, 0, 250, 500, 1000]);
        // Quiet for a while: replacements are immediate again.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(
            run(&mut pool, Input::NodeExited(NodeId(7)), later)[1],
            replacement_now()
        );
    }

    #[test]
    fn nodes_added_for_capacity_are_not_replaced_beyond_the_warm_count() {
        let t0 = Instant::now();
        let mut pool = ready_pool(1, t0);
        run(
            &mut pool,
            Input::NodeReady(NodeId(9), SpawnOrigin::Placement),
            t0,
        );
        assert_eq!(pool.nodes(), 2);
        assert_eq!(
            run(&mut pool, Input::NodeExited(NodeId(9)), t0),
            vec![Output::RoomsLost(NodeId(9))]
        );
        assert_eq!(pool.nodes(), 1);
    }

    #[test]
    fn the_next_timeout_is_the_first_heartbeat_deadline() {
        let t0 = Instant::now();
        let mut pool = Lifecycle::new(2, HB);
        pool.handle(Input::Start, t0);
        let outputs: Vec<Output> = std::iter::from_fn(|| pool.poll_output()).collect();
        assert_eq!(
            outputs,
            vec![warm_now(); 2],
            "no node watched yet: no timeout"
        );
        run(
            &mut pool,
            Input::NodeReady(NodeId(1), SpawnOrigin::Warm),
            t0,
        );
        pool.handle(Input::NodeReady(NodeId(2), SpawnOrigin::Warm), t0);
        pool.handle(Input::Heartbeat(NodeId(1), t0 + Duration::from_secs(2)), t0);
        let outputs: Vec<Output> = std::iter::from_fn(|| pool.poll_output()).collect();
        assert_eq!(
            outputs,
            vec![Output::Timeout(t0 + HB)],
            "node 2's deadline first"
        );
    }

    #[test]
    fn heartbeats_of_unknown_nodes_are_ignored() {
        let t0 = Instant::now();
        let mut pool = ready_pool(1, t0);
        assert!(run(&mut pool, Input::Heartbeat(NodeId(42), t0), t0).is_empty());
        assert!(run(&mut pool, Input::Timeout, t0).is_empty());
    }
}
