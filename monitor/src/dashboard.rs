//! `monitor watch`: a live terminal dashboard. Counts and the shown rooms' media statistics
//! refresh every 2 s from the monitor queries (the supervisor collects statistics only for
//! what is asked, so only while this runs); the event pane follows the event stream. ↑/↓
//! select a participant (a red mark: a score below 5), Enter shows its diagnostics live,
//! Esc goes back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use monitor_api::{
    NodeInfo, Participant, PeerDiagnostics, Query, RoomDetail, RoomInfo, ServerMessage, Summary,
};
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, Paragraph, Row, Table};
use ratatui::Frame;
use tokio::sync::mpsc;

use crate::connection::{answer_data, Client, ConnectError};
use crate::{event_line, tables};

/// Events kept on screen.
const EVENT_LINES: usize = 200;
/// Rooms whose participants are fetched each refresh.
const DETAILED_ROOMS: usize = 12;
const REFRESH: Duration = Duration::from_secs(2);
/// A score below this gets a participant the red mark.
const LOW_SCORE: u8 = 5;

enum Asked {
    Summary,
    Nodes,
    Rooms,
    Room(String),
    Peer,
}

#[derive(Default)]
struct Screen {
    url: String,
    summary: Option<Summary>,
    nodes: Vec<NodeInfo>,
    rooms: Vec<RoomInfo>,
    details: BTreeMap<String, RoomDetail>,
    events: VecDeque<String>,
    /// Index of the selected participant in the list (rooms by name, peers as joined).
    selected: usize,
    /// The participant whose diagnostics are shown: (room, peer id), and the latest answer.
    diagnosing: Option<(String, String)>,
    diagnostics: Option<PeerDiagnostics>,
}

/// Restores the terminal however the dashboard ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Keys pressed, read on a thread of their own (crossterm's reads block).
fn keys() -> mpsc::UnboundedReceiver<(KeyCode, KeyModifiers)> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !tx.is_closed() {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => {
                    if let Ok(TermEvent::Key(key)) = event::read() {
                        if key.kind == KeyEventKind::Press {
                            let _ = tx.send((key.code, key.modifiers));
                        }
                    }
                }
                Ok(false) => {}
                Err(_) => break,
            }
        }
    });
    rx
}

/// Runs the dashboard until `q` (or Esc, or Ctrl-C) or until the connection breaks.
pub async fn run(mut client: Client, url: &str) -> Result<(), ConnectError> {
    client
        .call(Query::Subscribe {
            room: None,
            quality: false,
        })
        .await?;
    let mut terminal = ratatui::try_init()
        .map_err(|e| ConnectError::Protocol(format!("watch needs an interactive terminal: {e}")))?;
    let _guard = TerminalGuard;
    let mut keys = keys();
    let mut screen = Screen {
        url: url.to_string(),
        ..Screen::default()
    };
    let mut asked: HashMap<u64, Asked> = HashMap::new();
    let mut refresh = tokio::time::interval(REFRESH);
    screen.push_event(format!(
        "{}  watching; events appear here as they happen",
        event_line::clock(now_ms())
    ));
    loop {
        let draw = terminal.draw(|frame| draw(frame, &screen));
        draw.map_err(|e| ConnectError::Protocol(format!("cannot draw: {e}")))?;
        tokio::select! {
            key = keys.recv() => match key {
                Some((KeyCode::Esc, _)) if screen.diagnosing.is_some() => {
                    screen.diagnosing = None;
                    screen.diagnostics = None;
                }
                Some((KeyCode::Char('q') | KeyCode::Esc, _)) | None => return Ok(()),
                Some((KeyCode::Char('c'), m)) if m.contains(KeyModifiers::CONTROL) => return Ok(()),
                Some((KeyCode::Up, _)) => screen.selected = screen.selected.saturating_sub(1),
                Some((KeyCode::Down, _)) => {
                    let last = screen.participants().len().saturating_sub(1);
                    screen.selected = (screen.selected + 1).min(last);
                }
                Some((KeyCode::Enter, _)) => {
                    if let Some((room, p)) = screen.participants().get(screen.selected) {
                        let (room, peer) = (room.to_string(), p.peer_id.clone());
                        screen.diagnostics = None;
                        screen.diagnosing = Some((room.clone(), peer.clone()));
                        asked.insert(client.send(Query::Peer { room, peer }).await?, Asked::Peer);
                    }
                }
                Some(_) => {}
            },
            _ = refresh.tick() => {
                if let Some((room, peer)) = screen.diagnosing.clone() {
                    asked.insert(client.send(Query::Peer { room, peer }).await?, Asked::Peer);
                }
                asked.insert(client.send(Query::Summary).await?, Asked::Summary);
                asked.insert(client.send(Query::Nodes).await?, Asked::Nodes);
                asked.insert(client.send(Query::Rooms).await?, Asked::Rooms);
                for room in screen.rooms.iter().take(DETAILED_ROOMS) {
                    let id = client.send(Query::Room { room: room.room.clone() }).await?;
                    asked.insert(id, Asked::Room(room.room.clone()));
                }
            }
            message = client.next() => match message? {
                ServerMessage::Answer(answer) => {
                    let what = answer.id.and_then(|id| asked.remove(&id));
                    screen.take(what, answer_data(answer));
                }
                ServerMessage::Event(e) => screen.push_event(event_line::event(&e.event)),
                ServerMessage::Lagged(l) => {
                    screen.push_event(format!("… {} events dropped (screen too slow)", l.lagged.missed))
                }
            },
        }
    }
}

impl Screen {
    fn push_event(&mut self, line: String) {
        if self.events.len() == EVENT_LINES {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    fn take(&mut self, what: Option<Asked>, data: Result<serde_json::Value, ConnectError>) {
        let Some(what) = what else { return };
        match (what, data) {
            (Asked::Summary, Ok(d)) => self.summary = serde_json::from_value(d).ok(),
            (Asked::Nodes, Ok(d)) => self.nodes = serde_json::from_value(d).unwrap_or_default(),
            (Asked::Rooms, Ok(d)) => {
                self.rooms = serde_json::from_value(d).unwrap_or_default();
                let open: Vec<&str> = self.rooms.iter().map(|r| r.room.as_str()).collect();
                self.details.retain(|name, _| open.contains(&name.as_str()));
            }
            (Asked::Room(name), Ok(d)) => {
                if let Ok(detail) = serde_json::from_value(d) {
                    self.details.insert(name, detail);
                }
            }
            // The room closed between the two queries.
            (Asked::Room(name), Err(_)) => {
                self.details.remove(&name);
            }
            (Asked::Peer, Ok(d)) => self.diagnostics = serde_json::from_value(d).ok(),
            (Asked::Peer, Err(e)) => {
                self.diagnosing = None;
                self.diagnostics = None;
                self.push_event(format!("diagnostics stopped: {e}"));
            }
            (_, Err(e)) => self.push_event(format!("query failed: {e}")),
        }
    }
}

impl Screen {
    /// Every participant shown, with its room, in list order.
    fn participants(&self) -> Vec<(&str, &Participant)> {
        self.details
            .values()
            .flat_map(|room| {
                room.participants
                    .iter()
                    .map(move |p| (room.room.as_str(), p))
            })
            .collect()
    }
}

/// Whether something `p` sends or receives (and is not paused) scores below [`LOW_SCORE`].
fn in_trouble(p: &Participant) -> bool {
    let sends = p
        .producers
        .iter()
        .any(|x| x.paused != Some(true) && x.score.is_some_and(|s| s < LOW_SCORE));
    let receives = p.consumers.iter().any(|x| {
        x.paused != Some(true)
            && x.producer_paused != Some(true)
            && x.score.is_some_and(|s| s < LOW_SCORE)
    });
    sends || receives
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `█████░░░░░` for a CPU percentage of one core.
fn load_bar(percent: f64, width: usize) -> String {
    let filled = ((percent / 100.0) * width as f64)
        .round()
        .clamp(0.0, width as f64) as usize;
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

fn draw(frame: &mut Frame, screen: &Screen) {
    let [header, nodes, rooms, people, events, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(screen.nodes.iter().map(|n| n.workers.len()).sum::<usize>() as u16 + 3),
        Constraint::Length(screen.rooms.len().min(10) as u16 + 3),
        Constraint::Min(4),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);

    let totals = match &screen.summary {
        Some(s) => format!(
            "{} nodes · {} workers · {} rooms · {} participants · {} producers · {} consumers · worker cpu mean {:.1} % max {:.1} % · up {}",
            s.nodes, s.workers, s.rooms, s.participants, s.producers, s.consumers,
            s.load.cpu_percent_mean, s.load.cpu_percent_max, tables::duration(s.uptime_secs)
        ),
        None => "waiting for the first answer…".to_string(),
    };
    frame.render_widget(
        Paragraph::new(totals)
            .block(Block::bordered().title(format!(" SFU monitor · {} ", screen.url))),
        header,
    );

    let worker_rows = screen.nodes.iter().flat_map(|n| {
        n.workers.iter().map(move |w| {
            Row::new(vec![
                format!("{} (pid {})", n.node, n.pid),
                w.worker.to_string(),
                format!("{} {:5.1} %", load_bar(w.cpu_percent, 10), w.cpu_percent),
                w.rooms.len().to_string(),
                w.participants.to_string(),
                w.producers.to_string(),
                w.consumers.to_string(),
            ])
        })
    });
    frame.render_widget(
        Table::new(
            worker_rows,
            [
                Constraint::Length(20),
                Constraint::Length(6),
                Constraint::Length(20),
                Constraint::Length(6),
                Constraint::Length(12),
                Constraint::Length(10),
                Constraint::Length(10),
            ],
        )
        .header(
            Row::new([
                "NODE",
                "WORKER",
                "CPU",
                "ROOMS",
                "PARTICIPANTS",
                "PRODUCERS",
                "CONSUMERS",
            ])
            .style(bold),
        )
        .block(Block::bordered().title(" Nodes and workers ")),
        nodes,
    );

    let room_rows = screen.rooms.iter().map(|r| {
        Row::new(vec![
            r.room.clone(),
            format!("{} / {}", r.node, r.worker),
            r.participants.to_string(),
            r.producers.to_string(),
            r.consumers.to_string(),
            tables::duration(r.age_secs),
        ])
    });
    frame.render_widget(
        Table::new(
            room_rows,
            [
                Constraint::Min(16),
                Constraint::Length(14),
                Constraint::Length(12),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(8),
            ],
        )
        .header(
            Row::new([
                "ROOM",
                "NODE / WORKER",
                "PARTICIPANTS",
                "PRODUCERS",
                "CONSUMERS",
                "AGE",
            ])
            .style(bold),
        )
        .block(Block::bordered().title(" Rooms ")),
        rooms,
    );

    if let Some((room, peer)) = &screen.diagnosing {
        let text = match &screen.diagnostics {
            Some(d) => tables::peer(d),
            None => format!("asking for {peer} of {room}…"),
        };
        frame.render_widget(
            Paragraph::new(text).block(
                Block::bordered().title(" Participant diagnostics (live, every 2 s) · Esc back "),
            ),
            people,
        );
    } else {
        let people_lines: Vec<ListItem> = screen
            .participants()
            .into_iter()
            .enumerate()
            .map(|(index, (room, p))| {
                let sent: u64 = p.producers.iter().filter_map(|x| x.bitrate_bps).sum();
                let received: u64 = p.consumers.iter().filter_map(|x| x.bitrate_bps).sum();
                let codecs: Vec<&str> = p.producers.iter().map(|x| x.codec.as_str()).collect();
                let (mark, mark_style) = if in_trouble(p) {
                    ("●", Style::default().fg(Color::Red))
                } else {
                    (" ", Style::default())
                };
                let mut spans = vec![
                    ratatui::text::Span::styled(mark, mark_style),
                    ratatui::text::Span::raw(format!(
                        " {:<16} {:<20} sends {} [{}] {:>12}   receives {} {:>12}",
                        room,
                        p.display_name,
                        p.producers.len(),
                        codecs.join(", "),
                        tables::bitrate(Some(sent)),
                        p.consumers.len(),
                        tables::bitrate(Some(received)),
                    )),
                ];
                if let Some(secs) = p.resumable_secs {
                    spans.push(ratatui::text::Span::styled(
                        format!("   disconnected, resumable for {secs} s"),
                        Style::default().fg(Color::Yellow),
                    ));
                }
                let line = Line::from(spans);
                let item = ListItem::new(line);
                if index == screen.selected {
                    item.style(Style::default().add_modifier(Modifier::REVERSED))
                } else {
                    item
                }
            })
            .collect();
        frame.render_widget(
            List::new(people_lines).block(
                Block::bordered().title(" Participants (● score below 5) · ↑/↓ Enter: diagnose "),
            ),
            people,
        );
    }

    // The newest events at the bottom, as many as fit.
    let visible = events.height.saturating_sub(2) as usize;
    let skip = screen.events.len().saturating_sub(visible);
    let event_lines: Vec<ListItem> = screen
        .events
        .iter()
        .skip(skip)
        .map(|line| ListItem::new(line.as_str()))
        .collect();
    frame.render_widget(
        List::new(event_lines).block(Block::bordered().title(" Events ")),
        events,
    );
    frame.render_widget(
        Paragraph::new(" q quits · ↑/↓ select a participant · Enter diagnostics · Esc back"),
        footer,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_bars_fill_with_the_load() {
        assert_eq!(load_bar(0.0, 10), "░░░░░░░░░░");
        assert_eq!(load_bar(50.0, 10), "█████░░░░░");
        assert_eq!(load_bar(250.0, 4), "████");
    }
}
