//! The activity log's routes: `GET /api/v1/logs` (the newest entries, or
//! those after one; by map, key, errors only, since a time) and
//! `GET /api/v1/logs/stream`, the same filters as server-sent events, one
//! `entry` event per line as it is stored (its id the line's `seq`), for
//! `dualwrite logs --follow`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::routes::{Api, ApiError, ErrorBody};
use crate::checkpoint::LogFilter;
use crate::sync::LogEntry;
use crate::sync::log::parse_since;

/// The most entries one answer holds.
pub const MAX_ENTRIES: usize = 10_000;

/// How often the stream looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// The filters of both routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    map: Option<String>,
    key: Option<String>,
    #[serde(default)]
    errors: bool,
    since: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

impl LogQuery {
    fn filter(&self) -> Result<LogFilter, ApiError> {
        let since = match &self.since {
            Some(since) => Some(
                parse_since(since)
                    .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "bad-request", why))?,
            ),
            None => None,
        };
        Ok(LogFilter {
            map: self.map.clone(),
            key: self.key.clone(),
            errors: self.errors,
            class: None,
            since,
            after: self.after,
        })
    }
}

/// Entries of the activity log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogEntries {
    /// Oldest first.
    pub entries: Vec<LogEntry>,
}

#[utoipa::path(get, path = "/api/v1/logs",
    params(
        ("map" = Option<String>, Query, description = "Only this map's entries"),
        ("key" = Option<String>, Query, description = "Only this key's entries"),
        ("errors" = Option<bool>, Query, description = "Only errors"),
        ("since" = Option<String>, Query, description = "Only entries at or after this time: RFC 3339, or a duration ago such as 15m"),
        ("after" = Option<u64>, Query, description = "Only entries after this seq, oldest first"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 10000): the newest, or with `after` the first after it")),
    responses((status = 200, description = "Entries of the activity log, oldest first", body = LogEntries),
        (status = 400, description = "A filter that does not parse", body = ErrorBody)))]
pub(super) async fn list_logs(
    State(engine): State<Api>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogEntries>, ApiError> {
    let filter = query.filter()?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_ENTRIES);
    let newest = filter.after.is_none();
    let lines = engine.log(&filter, limit, newest).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            error.to_string(),
        )
    })?;
    Ok(Json(LogEntries {
        entries: lines.into_iter().map(LogEntry::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/logs/stream",
    params(
        ("map" = Option<String>, Query, description = "Only this map's entries"),
        ("key" = Option<String>, Query, description = "Only this key's entries"),
        ("errors" = Option<bool>, Query, description = "Only errors"),
        ("after" = Option<u64>, Query, description = "From the entry after this seq (default: from now on)")),
    responses((status = 200, description = "Server-sent events: an `entry` event (JSON of a log entry, its id the seq) per line as it is stored", content_type = "text/event-stream", body = String),
        (status = 400, description = "A filter that does not parse", body = ErrorBody)))]
pub(super) async fn stream_logs(
    State(engine): State<Api>,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let mut filter = query.filter()?;
    if filter.after.is_none() {
        // From now on: after the newest line there is.
        let newest = engine
            .log(&LogFilter::default(), 1, true)
            .map_err(|error| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store",
                    error.to_string(),
                )
            })?;
        filter.after = Some(newest.last().map_or(0, |line| line.seq));
    }
    let stream = futures_util::stream::unfold(
        (engine, filter, Vec::<Event>::new()),
        |(engine, mut filter, mut ready)| async move {
            loop {
                if let Some(event) = ready.pop() {
                    return Some((Ok(event), (engine, filter, ready)));
                }
                match engine.log(&filter, MAX_ENTRIES, false) {
                    Ok(lines) if !lines.is_empty() => {
                        if let Some(last) = lines.last() {
                            filter.after = Some(last.seq);
                        }
                        // Popped from the end: stored newest first.
                        ready = lines
                            .into_iter()
                            .rev()
                            .map(|line| {
                                let seq = line.seq;
                                let entry = LogEntry::from(line);
                                Event::default()
                                    .event("entry")
                                    .id(seq.to_string())
                                    .json_data(&entry)
                                    .unwrap_or_else(|_| Event::default().comment("unencodable"))
                            })
                            .collect();
                    }
                    Ok(_) => tokio::time::sleep(FOLLOW_EVERY).await,
                    Err(error) => {
                        let event = Event::default().event("error").data(error.to_string());
                        tokio::time::sleep(FOLLOW_EVERY).await;
                        return Some((Ok(event), (engine, filter, ready)));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
