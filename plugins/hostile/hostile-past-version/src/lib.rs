//! Not hostile: a plugin written against the released contract
//! `dualwrite:plugin@0.1.0` directly with wit-bindgen, as a plugin built
//! before 0.2.0 was. A host that speaks 0.2.0 must keep loading and running
//! it, sending it every field as 0.1.0 does. (The corpus covers the
//! contract's versions on both sides: `hostile-future-version` is the
//! other.)
//!
//! The filter skips rows whose `name` is empty; the transform upper-cases
//! `name` and adds its length as `length`.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../wit/v0.1.0",
        world: "dualwrite:plugin/plugin@0.1.0",
    });

    use dualwrite::plugin::types::{
        Batch, Context, FieldChange, Outcome, Transformed, Value, Verdict,
    };

    struct Past;

    fn name(batch: &Batch, row: &[Value]) -> Option<String> {
        let index = batch.fields.iter().position(|field| field == "name")?;
        match &row[index] {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        }
    }

    impl exports::dualwrite::plugin::filter::Guest for Past {
        fn filter(_: Context, batch: Batch) -> Vec<Verdict> {
            batch
                .rows
                .iter()
                .map(|row| match name(&batch, row) {
                    Some(name) if !name.is_empty() => Verdict::Keep,
                    _ => Verdict::Skip("no name".into()),
                })
                .collect()
        }
    }

    impl exports::dualwrite::plugin::transform::Guest for Past {
        fn transform(_: Context, batch: Batch) -> Transformed {
            let index = batch.fields.iter().position(|field| field == "name");
            let mut fields = batch.fields.clone();
            fields.push("length".into());
            let outcomes = batch
                .rows
                .iter()
                .map(|row| match (index, name(&batch, row)) {
                    (Some(index), Some(name)) => Outcome::Changed(vec![
                        FieldChange {
                            field: index as u32,
                            value: Some(Value::Text(name.to_uppercase())),
                        },
                        FieldChange {
                            field: batch.fields.len() as u32,
                            value: Some(Value::Integer(name.len() as i64)),
                        },
                    ]),
                    _ => Outcome::Unchanged,
                })
                .collect();
            Transformed { fields, outcomes }
        }
    }

    export!(Past);
}
