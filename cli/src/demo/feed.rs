//! The live feed: what the engine reports ([`SyncEvent`]s), printed as it
//! arrives, with the time since the demo last changed that row; and waiting
//! for the one event a scripted change should cause.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::{Receiver, error::RecvError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use dualwrite::checkpoint::Action;
use dualwrite::sync::SyncEvent;

use super::view;

/// An event as the feed's receiving task took it, with when.
#[derive(Debug)]
enum Received {
    Event(Instant, SyncEvent),
    Lagged(u64),
}

/// The engine's events, printed as they come.
#[derive(Debug)]
pub struct Feed {
    events: mpsc::UnboundedReceiver<Received>,
    /// Takes events from the engine as they come, so the time of arrival
    /// is right even while the demo is busy making a change.
    receiver: JoinHandle<()>,
    /// When the demo started: every line shows the time since.
    pub start: Instant,
    /// When the demo last changed each `(map, key)`.
    made: HashMap<(String, String), Instant>,
    /// Latencies of the changes that arrived (written or deleted).
    pub latencies: Vec<Duration>,
    /// Scripted changes a filter, a plugin or the error queue stopped.
    pub stopped: usize,
    /// Scripted changes that did not arrive in time.
    pub missed: Vec<String>,
}

impl Feed {
    /// A feed over `events`, timed from `start`.
    pub fn new(mut engine: Receiver<SyncEvent>, start: Instant) -> Feed {
        let (sender, events) = mpsc::unbounded_channel();
        let receiver = tokio::spawn(async move {
            loop {
                let received = match engine.recv().await {
                    Ok(event) => Received::Event(Instant::now(), event),
                    Err(RecvError::Lagged(skipped)) => Received::Lagged(skipped),
                    Err(RecvError::Closed) => return,
                };
                if sender.send(received).is_err() {
                    return;
                }
            }
        });
        Feed {
            events,
            receiver,
            start,
            made: HashMap::new(),
            latencies: Vec::new(),
            stopped: 0,
            missed: Vec::new(),
        }
    }

    /// Forgets every event received so far without printing it (the
    /// initial copy is shown as counts instead).
    pub fn skip_pending(&mut self) {
        loop {
            if self.events.try_recv().is_err() {
                return;
            }
        }
    }

    /// Notes that the demo is about to change `key` of `map` at its source:
    /// latencies count from the moment the request is sent, since a
    /// service may tell the host before it answers the demo.
    pub fn changed(&mut self, map: &str, key: &str) {
        self.made
            .insert((map.to_owned(), key.to_owned()), Instant::now());
    }

    /// Prints every event until one of `map`'s `key` with a `what` among
    /// `whats` arrives (true), or `patience` passes (false). Cancel-safe:
    /// an event is printed as soon as it is taken from the channel.
    pub async fn wait_for(
        &mut self,
        map: &str,
        key: &str,
        whats: &[Action],
        patience: Duration,
    ) -> bool {
        let until = tokio::time::Instant::now() + patience;
        loop {
            let Ok(Some((at, event))) = tokio::time::timeout_at(until, self.next()).await else {
                return false;
            };
            let latency = self.print(at, &event);
            // Keys compare without case, as the engine compares them (a company
            // code may be `usmf` on one side and `USMF` on the other).
            if event.map == map
                && event.key.eq_ignore_ascii_case(key)
                && whats.contains(&event.what)
            {
                match event.what {
                    Action::Written | Action::Deleted => {
                        self.latencies.push(latency.unwrap_or_default())
                    }
                    Action::Waiting => {}
                    _ => self.stopped += 1,
                }
                return true;
            }
        }
    }

    /// Prints every event for `span`.
    pub async fn idle(&mut self, span: Duration) {
        let until = tokio::time::Instant::now() + span;
        while let Ok(Some((at, event))) = tokio::time::timeout_at(until, self.next()).await {
            self.print(at, &event);
        }
    }

    /// The next event and when it came; `None` once the engine is gone.
    async fn next(&mut self) -> Option<(Instant, SyncEvent)> {
        loop {
            match self.events.recv().await? {
                Received::Event(at, event) => return Some((at, event)),
                Received::Lagged(skipped) => view::note(
                    self.start,
                    &format!("(the feed fell behind; {skipped} events not shown)"),
                ),
            }
        }
    }

    /// Prints `event`; returns the time since the demo changed its row, if
    /// it did.
    fn print(&self, at: Instant, event: &SyncEvent) -> Option<Duration> {
        let latency = self
            .made
            .get(&(event.map.clone(), event.key.clone()))
            .map(|made| at.saturating_duration_since(*made));
        view::event(self.start, at, event, latency);
        latency
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}
