//! Quality events, decided without IO from periodic samples of media statistics (taken only
//! while a monitor subscribed to them): a consumer scoring below 5 for 5 s, a producer silent
//! for 5 s, a transport whose ICE is `disconnected` or whose DTLS `failed` — and when each
//! is good again, or gone. On the crate's contract: samples go in with
//! [`QualityWatch::handle`], events come out of [`QualityWatch::poll_output`] (no timers: a
//! problem's duration is measured between samples).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use monitor_api::EventKind;

/// How long a problem lasts before it is reported (one bad sample is not a problem).
pub const SUSTAINED: Duration = Duration::from_secs(5);

/// A consumer scoring below this is in trouble.
pub const LOW_SCORE: u8 = 5;

/// What one sample says of one consumer, producer or transport of a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The room.
    pub room: String,
    /// The participant.
    pub peer_id: String,
    /// Its name.
    pub display_name: String,
    /// `consumer`, `producer` or `transport`.
    pub subject: &'static str,
    /// Its id.
    pub id: String,
    /// What is wrong now, if anything.
    pub problem: Option<Problem>,
}

/// Something wrong in one sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// For a person: "score 2", "silent", "ICE disconnected".
    pub what: String,
    /// Reported at once (a state change), rather than after [`SUSTAINED`] (a level).
    pub at_once: bool,
}

/// One item followed from sample to sample.
struct Tracked {
    observation: Observation,
    /// Since when it has been wrong.
    since: Option<Instant>,
    /// Whether that was reported.
    reported: bool,
}

/// What happened.
#[derive(Clone, Debug)]
pub enum Input {
    /// A sample of `rooms`: every item of those rooms that still exists.
    Sample {
        /// The rooms sampled.
        rooms: Vec<String>,
        /// What was seen.
        observations: Vec<Observation>,
    },
}

/// Follows the items of the rooms sampled and reports their quality changes.
#[derive(Default)]
pub struct QualityWatch {
    items: HashMap<String, Tracked>,
    events: VecDeque<EventKind>,
}

impl QualityWatch {
    /// Takes one input at `now`; the events follow from [`QualityWatch::poll_output`].
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Sample {
                rooms,
                observations,
            } => self.sample(&rooms, observations, now),
        }
    }

    fn sample(&mut self, rooms: &[String], observations: Vec<Observation>, now: Instant) {
        let mut seen = std::collections::HashSet::new();
        for observation in observations {
            seen.insert(observation.id.clone());
            let tracked = self
                .items
                .entry(observation.id.clone())
                .or_insert_with(|| Tracked {
                    observation: observation.clone(),
                    since: None,
                    reported: false,
                });
            match &observation.problem {
                Some(problem) => {
                    let since = *tracked.since.get_or_insert(now);
                    let lasted = now.saturating_duration_since(since);
                    if !tracked.reported && (problem.at_once || lasted >= SUSTAINED) {
                        tracked.reported = true;
                        let what = if problem.at_once {
                            problem.what.clone()
                        } else {
                            format!("{} for {} s", problem.what, lasted.as_secs())
                        };
                        self.events.push_back(event(&observation, what, true));
                    }
                }
                None => {
                    if tracked.reported {
                        self.events
                            .push_back(event(&observation, "good again".into(), false));
                    }
                    tracked.since = None;
                    tracked.reported = false;
                }
            }
            tracked.observation = observation;
        }
        // Items of the sampled rooms that are gone: a reported problem ends with them.
        let gone: Vec<String> = self
            .items
            .iter()
            .filter(|(id, t)| !seen.contains(*id) && rooms.contains(&t.observation.room))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(tracked) = self.items.remove(&id) {
                if tracked.reported {
                    self.events
                        .push_back(event(&tracked.observation, "gone".into(), false));
                }
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_output(&mut self) -> Option<EventKind> {
        self.events.pop_front()
    }
}

fn event(o: &Observation, reason: String, degraded: bool) -> EventKind {
    let (room, peer_id, display_name) = (o.room.clone(), o.peer_id.clone(), o.display_name.clone());
    let (subject, id) = (o.subject.to_string(), o.id.clone());
    if degraded {
        EventKind::QualityDegraded {
            room,
            peer_id,
            display_name,
            subject,
            id,
            reason,
        }
    } else {
        EventKind::QualityRecovered {
            room,
            peer_id,
            display_name,
            subject,
            id,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample of the test's rooms.
    fn feed(watch: &mut QualityWatch, observations: Vec<Observation>, now: Instant) {
        let rooms = rooms();
        watch.handle(
            Input::Sample {
                rooms,
                observations,
            },
            now,
        );
    }

    fn consumer(score: Option<u8>) -> Observation {
        Observation {
            room: "demo".into(),
            peer_id: "p1".into(),
            display_name: "Alice".into(),
            subject: "consumer",
            id: "c1".into(),
            problem: score.map(|s| Problem {
                what: format!("score {s}"),
                at_once: false,
            }),
        }
    }

    fn transport(problem: Option<&str>) -> Observation {
        Observation {
            subject: "transport",
            id: "t1".into(),
            problem: problem.map(|what| Problem {
                what: what.into(),
                at_once: true,
            }),
            ..consumer(None)
        }
    }

    fn drain(watch: &mut QualityWatch) -> Vec<EventKind> {
        std::iter::from_fn(|| watch.poll_output()).collect()
    }

    fn rooms() -> Vec<String> {
        vec!["demo".into()]
    }

    #[test]
    fn a_low_score_is_reported_once_it_lasted_five_seconds_and_again_when_it_recovers() {
        let mut watch = QualityWatch::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        feed(&mut watch, vec![consumer(Some(2))], at(0));
        feed(&mut watch, vec![consumer(Some(3))], at(2));
        feed(&mut watch, vec![consumer(Some(2))], at(4));
        assert!(drain(&mut watch).is_empty(), "not yet five seconds");
        feed(&mut watch, vec![consumer(Some(2))], at(6));
        let events = drain(&mut watch);
        assert!(
            matches!(&events[..], [EventKind::QualityDegraded { subject, reason, .. }]
                if subject == "consumer" && reason == "score 2 for 6 s"),
            "{events:?}"
        );
        feed(&mut watch, vec![consumer(Some(1))], at(8));
        assert!(drain(&mut watch).is_empty(), "reported once");
        feed(&mut watch, vec![consumer(None)], at(10));
        assert!(matches!(
            &drain(&mut watch)[..],
            [EventKind::QualityRecovered { reason, .. }] if reason == "good again"
        ));
    }

    #[test]
    fn a_short_dip_is_not_reported() {
        let mut watch = QualityWatch::default();
        let t0 = Instant::now();
        feed(&mut watch, vec![consumer(Some(2))], t0);
        feed(
            &mut watch,
            vec![consumer(None)],
            t0 + Duration::from_secs(2),
        );
        feed(
            &mut watch,
            vec![consumer(Some(2))],
            t0 + Duration::from_secs(4),
        );
        feed(
            &mut watch,
            vec![consumer(Some(2))],
            t0 + Duration::from_secs(8),
        );
        assert!(
            drain(&mut watch).is_empty(),
            "the clock restarted at the dip's end"
        );
    }

    #[test]
    fn an_ice_disconnection_is_reported_at_once_and_its_end_too() {
        let mut watch = QualityWatch::default();
        let t0 = Instant::now();
        feed(&mut watch, vec![transport(Some("ICE disconnected"))], t0);
        assert!(matches!(
            &drain(&mut watch)[..],
            [EventKind::QualityDegraded { subject, reason, .. }]
                if subject == "transport" && reason == "ICE disconnected"
        ));
        feed(
            &mut watch,
            vec![transport(None)],
            t0 + Duration::from_secs(2),
        );
        assert!(matches!(
            &drain(&mut watch)[..],
            [EventKind::QualityRecovered { .. }]
        ));
    }

    #[test]
    fn a_reported_item_that_disappears_is_reported_gone_and_others_rooms_are_left_alone() {
        let mut watch = QualityWatch::default();
        let t0 = Instant::now();
        feed(&mut watch, vec![transport(Some("DTLS failed"))], t0);
        drain(&mut watch);
        // A sample of another room says nothing of this one's items.
        let other = Input::Sample {
            rooms: vec!["other".to_string()],
            observations: vec![],
        };
        watch.handle(other, t0 + Duration::from_secs(1));
        assert!(drain(&mut watch).is_empty());
        feed(&mut watch, vec![], t0 + Duration::from_secs(2));
        assert!(matches!(
            &drain(&mut watch)[..],
            [EventKind::QualityRecovered { reason, .. }] if reason == "gone"
        ));
    }
}
