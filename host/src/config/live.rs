//! A map's `mode` and `live_fallback` (`DW045 live-mode`).
//!
//! A live map is live from Dataverse: Dataverse documents synchronous
//! webhook steps that run inside a save's transaction
//! (<https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks>),
//! and finops documents no synchronous outbound hook. So a live map needs a
//! Dataverse side whose changes flow into a finops side, and a way for
//! Dataverse to call the host: `[engine] listen` and `public_url`, and the
//! Dataverse system's `events_secret_env` (the secret its calls carry).

use std::collections::BTreeMap;

use super::build::Report;
use super::{Config, MapConfig};
use crate::map::{
    FieldMapping, LiveFallback, Problem, ProblemCode, Side, SyncMode, SystemKind, SystemPlan,
};

/// The map's mode, or `None` (with the problems reported) when it is wrong.
pub(super) fn sync_mode(
    map: &MapConfig,
    config: &Config,
    systems: &BTreeMap<String, SystemPlan>,
    fields: &[FieldMapping],
    report: &mut Report,
) -> Option<SyncMode> {
    let problem = |field: &str, message: String, help: String| {
        Problem::new(ProblemCode::LiveMode, message, help)
            .in_map(&map.name)
            .at_field(field)
    };
    let fallback = match map.live_fallback.as_deref() {
        None | Some("fail") => LiveFallback::Fail,
        Some("queue") => LiveFallback::Queue,
        Some(other) => {
            report.push(problem(
                "live_fallback",
                format!("`live_fallback = \"{other}\"` is not a fallback"),
                "write `live_fallback = \"fail\"` (a save fails while the map is not running) or `\"queue\"` (the change is queued and catch-up writes it)".into(),
            ));
            return None;
        }
    };
    match map.mode.as_deref() {
        None | Some("async") => {
            if map.live_fallback.is_some() {
                report.push(problem(
                    "live_fallback",
                    "`live_fallback` applies to a live map only, and this map is async".into(),
                    "remove `live_fallback`, or set `mode = \"live\"`".into(),
                ));
                return None;
            }
            return Some(SyncMode::Async);
        }
        Some("live") => {}
        Some(other) => {
            report.push(problem(
                "mode",
                format!("`mode = \"{other}\"` is not a sync mode"),
                "write `mode = \"async\"` (the default) or `mode = \"live\"`".into(),
            ));
            return None;
        }
    }
    let kind = |side: &super::SideConfig| systems.get(&side.system).map(|s| s.kind);
    let flows_from = |side: Side| {
        fields.iter().any(|m| match side {
            Side::Left => m.direction.writes_right(),
            Side::Right => m.direction.writes_left(),
        })
    };
    let live_side = [
        (Side::Left, &map.left, &map.right),
        (Side::Right, &map.right, &map.left),
    ]
    .into_iter()
    .find(|(side, from, to)| {
        kind(from) == Some(SystemKind::Dataverse)
            && kind(to) == Some(SystemKind::Finops)
            && flows_from(*side)
    });
    let Some((_, dataverse, _)) = live_side else {
        if kind(&map.left).is_none() || kind(&map.right).is_none() {
            // An unknown system is reported by the side's own check.
            return None;
        }
        report.push(problem(
            "mode",
            "a live map needs a Dataverse side whose changes flow into finops, and this map has none".into(),
            "finops documents no synchronous outbound hook, so a map is live from Dataverse only: map fields from the Dataverse side to the finops side, or remove `mode = \"live\"`".into(),
        ));
        return None;
    };
    let mut missing = Vec::new();
    if config.engine.listen.is_none() {
        missing.push("`[engine] listen`".to_owned());
    }
    if config.engine.public_url.is_none() {
        missing.push("`[engine] public_url`".to_owned());
    }
    if systems
        .get(&dataverse.system)
        .is_some_and(|system| system.events_secret.is_none())
    {
        missing.push(format!(
            "`events_secret_env` of `[systems.{}]`",
            dataverse.system
        ));
    }
    if !missing.is_empty() {
        report.push(problem(
            "mode",
            format!(
                "a live map is called by Dataverse inside each save, and the config lacks {}",
                missing.join(", ")
            ),
            "set the address the host listens on, the URL Dataverse reaches it at, and the secret its calls carry, or remove `mode = \"live\"`".into(),
        ));
        return None;
    }
    Some(SyncMode::Live { fallback })
}
