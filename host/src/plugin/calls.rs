//! The calls of a [`Plugin`]: `reads`, and its filter or transform over a
//! batch, in either contract version.
//!
//! - [`Plugin::filter_rows`] and [`Plugin::transform_rows`] run over
//!   [`Rows`] (the rows still alive, the fields the plugin reads), and a
//!   transform's changes are written straight back into them; a map's plugin
//!   chain uses these.
//! - [`Plugin::filter`] and [`Plugin::transform`] run over an owned
//!   [`Batch`] (for `dualwrite plugin run`, the demo and tests); they ask the
//!   plugin once what it reads under the context's direction and settings,
//!   and remember it.
//!
//! A plugin of the released contract 0.1.0 declares no reads: it is sent
//! every field, in its row-by-row form.

use super::bindings::{
    Batch, Context, FILTER_EXPORT, TRANSFORM_EXPORT, Transformed, Verdict, wire,
};
use super::error::PluginError;
use super::plugin::{Call, Exports, Plugin};
use super::rows::Rows;
use super::validate;

/// One of a plugin's two interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// `filter`.
    Filter,
    /// `transform`.
    Transform,
}

/// What a plugin answered to `reads` for one interface, direction and set of
/// settings.
#[derive(Debug)]
pub(super) struct ReadsEntry {
    interface: Interface,
    context: wire::Context,
    reads: Option<Vec<String>>,
}

impl Plugin {
    /// The fields `interface` reads under `context`'s direction and settings
    /// (its company is ignored): `None` for every field. One call of the
    /// plugin; a map asks once per step.
    pub fn reads(
        &self,
        interface: Interface,
        context: &Context,
    ) -> Result<Call<Option<Vec<String>>>, PluginError> {
        let mut asked = wire::Context::from(context);
        asked.company = None;
        let map = context.table_map.as_str();
        match (&self.exports, interface) {
            (
                Exports::Current {
                    filter: Some(indices),
                    ..
                },
                Interface::Filter,
            ) => self.call(
                map,
                |store, instance| {
                    indices
                        .load(&mut *store, instance)?
                        .call_reads(&mut *store, &asked)
                },
                |reads| validate::reads(reads, &self.limits),
            ),
            (
                Exports::Current {
                    transform: Some(indices),
                    ..
                },
                Interface::Transform,
            ) => self.call(
                map,
                |store, instance| {
                    indices
                        .load(&mut *store, instance)?
                        .call_reads(&mut *store, &asked)
                },
                |reads| validate::reads(reads, &self.limits),
            ),
            (Exports::Released { .. }, _) if self.exports_interface(interface) => Ok(Call {
                result: None,
                stats: Default::default(),
            }),
            _ => Err(self.not_exported(interface, map)),
        }
    }

    /// Runs the filter over rows `which` of `rows`, sending the fields of
    /// `reads` (every field when `None`): one verdict per row of `which`.
    pub fn filter_rows(
        &self,
        context: &Context,
        rows: &Rows,
        which: &[usize],
        reads: Option<&[String]>,
    ) -> Result<Call<Vec<Verdict>>, PluginError> {
        let map = context.table_map.as_str();
        match &self.exports {
            Exports::Current {
                filter: Some(indices),
                ..
            } => {
                let batch = rows.wire_batch(which, &rows.columns_for(reads));
                let context = wire::Context::from(context);
                let call = self.call(
                    map,
                    |store, instance| {
                        let verdicts = indices.load(&mut *store, instance)?.call_filter(
                            &mut *store,
                            &context,
                            &batch,
                        )?;
                        Ok(verdicts.into_iter().map(owned_verdict).collect::<Vec<_>>())
                    },
                    |verdicts| validate::verdicts(batch.rows as usize, verdicts, &self.limits),
                )?;
                Ok(call)
            }
            Exports::Released {
                filter: Some(indices),
                ..
            } => {
                let batch = rows.owned_batch(which);
                self.call(
                    map,
                    |store, instance| {
                        indices.load(&mut *store, instance)?.call_filter(
                            &mut *store,
                            context,
                            &batch,
                        )
                    },
                    |verdicts| validate::verdicts(batch.rows.len(), verdicts, &self.limits),
                )
            }
            _ => Err(self.not_exported(Interface::Filter, map)),
        }
    }

    /// Runs the transform over rows `which` of `rows`, sending the fields of
    /// `reads` (every field when `None`), and writes its changes into `rows`
    /// (fields it adds become new columns): one verdict per row of `which`.
    pub fn transform_rows(
        &self,
        context: &Context,
        rows: &mut Rows,
        which: &[usize],
        reads: Option<&[String]>,
    ) -> Result<Call<Vec<Verdict>>, PluginError> {
        let map = context.table_map.as_str();
        match &self.exports {
            Exports::Current {
                transform: Some(indices),
                ..
            } => {
                let columns = rows.columns_for(reads);
                let batch = rows.wire_batch(which, &columns);
                let wire_context = wire::Context::from(context);
                let call = self.call(
                    map,
                    |store, instance| {
                        indices.load(&mut *store, instance)?.call_transform(
                            &mut *store,
                            &wire_context,
                            &batch,
                        )
                    },
                    |result| validate::wire_transformed(&batch, result, &self.limits),
                )?;
                Ok(Call {
                    result: rows.apply(which, &columns, &call.result),
                    stats: call.stats,
                })
            }
            Exports::Released {
                transform: Some(indices),
                ..
            } => {
                let batch = rows.owned_batch(which);
                let call = self.call(
                    map,
                    |store, instance| {
                        indices.load(&mut *store, instance)?.call_transform(
                            &mut *store,
                            context,
                            &batch,
                        )
                    },
                    |result| validate::transformed(&batch, result, &self.limits),
                )?;
                Ok(Call {
                    result: rows.apply_owned(which, &call.result),
                    stats: call.stats,
                })
            }
            _ => Err(self.not_exported(Interface::Transform, map)),
        }
    }

    /// Runs the filter over `batch`: one verdict per row. The plugin is sent
    /// only the fields it reads.
    pub fn filter(
        &self,
        context: &Context,
        batch: &Batch,
    ) -> Result<Call<Vec<Verdict>>, PluginError> {
        if let Exports::Released {
            filter: Some(indices),
            ..
        } = &self.exports
        {
            return self.call(
                &context.table_map,
                |store, instance| {
                    indices
                        .load(&mut *store, instance)?
                        .call_filter(&mut *store, context, batch)
                },
                |verdicts| validate::verdicts(batch.rows.len(), verdicts, &self.limits),
            );
        }
        let reads = self.remembered_reads(Interface::Filter, context)?;
        let rows = Rows::from_batch(batch);
        let all: Vec<usize> = (0..rows.len()).collect();
        self.filter_rows(context, &rows, &all, reads.as_deref())
    }

    /// Runs the transform over `batch`: one outcome per row, under a schema
    /// of the batch's fields then those the transform added. The plugin is
    /// sent only the fields it reads.
    pub fn transform(
        &self,
        context: &Context,
        batch: &Batch,
    ) -> Result<Call<Transformed>, PluginError> {
        if let Exports::Released {
            transform: Some(indices),
            ..
        } = &self.exports
        {
            return self.call(
                &context.table_map,
                |store, instance| {
                    indices
                        .load(&mut *store, instance)?
                        .call_transform(&mut *store, context, batch)
                },
                |result| validate::transformed(batch, result, &self.limits),
            );
        }
        let reads = self.remembered_reads(Interface::Transform, context)?;
        let mut rows = Rows::from_batch(batch);
        let all: Vec<usize> = (0..rows.len()).collect();
        let call = self.transform_rows(context, &mut rows, &all, reads.as_deref())?;
        Ok(Call {
            result: rows.transformed(&call.result),
            stats: call.stats,
        })
    }

    /// What `interface` reads under `context`, asked once per direction and
    /// settings.
    fn remembered_reads(
        &self,
        interface: Interface,
        context: &Context,
    ) -> Result<Option<Vec<String>>, PluginError> {
        let mut key = wire::Context::from(context);
        key.company = None;
        key.table_map.clear();
        let same = |entry: &&ReadsEntry| entry.interface == interface && entry.context == key;
        if let Some(entry) = self
            .reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(same)
        {
            return Ok(entry.reads.clone());
        }
        let reads = self.reads(interface, context)?.result;
        let mut remembered = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        // A handful of directions and settings per plugin; a caller that
        // keeps changing settings does not grow this without bound.
        if remembered.len() >= 64 {
            remembered.clear();
        }
        remembered.push(ReadsEntry {
            interface,
            context: key,
            reads: reads.clone(),
        });
        Ok(reads)
    }

    fn exports_interface(&self, interface: Interface) -> bool {
        match interface {
            Interface::Filter => self.has_filter(),
            Interface::Transform => self.has_transform(),
        }
    }

    fn not_exported(&self, interface: Interface, map: &str) -> PluginError {
        PluginError::NotExported {
            plugin: self.id.clone(),
            interface: match interface {
                Interface::Filter => FILTER_EXPORT,
                Interface::Transform => TRANSFORM_EXPORT,
            },
            map: map.to_owned(),
        }
    }
}

fn owned_verdict(verdict: wire::Verdict) -> Verdict {
    match verdict {
        wire::Verdict::Keep => Verdict::Keep,
        wire::Verdict::Skip(reason) => Verdict::Skip(reason),
        wire::Verdict::Fail(message) => Verdict::Fail(message),
    }
}
