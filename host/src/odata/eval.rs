//! Evaluation of a [`Filter`] against one row.

use std::cmp::Ordering;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::parser::{CompareOp, Expr, Filter, Function, Literal, Operand};

/// A row a filter can read: property name to JSON value.
pub trait FilterRow {
    /// The value of a property; `None` when the row does not have it.
    fn field(&self, name: &str) -> Option<&Value>;
}

impl FilterRow for Map<String, Value> {
    fn field(&self, name: &str) -> Option<&Value> {
        if let Some(v) = self.get(name) {
            return Some(v);
        }
        // A navigation path `a/b` reads into a nested object.
        let mut parts = name.split('/');
        let mut current = self.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }
}

impl Filter {
    /// True when the row satisfies the filter.
    pub fn matches<R: FilterRow + ?Sized>(&self, row: &R) -> bool {
        eval(self.expr(), row)
    }
}

enum Resolved<'a> {
    Json(&'a Value),
    Literal(&'a Literal),
}

const NULL: Value = Value::Null;

fn resolve<'a, R: FilterRow + ?Sized>(operand: &'a Operand, row: &'a R) -> Resolved<'a> {
    match operand {
        Operand::Field(name) => Resolved::Json(row.field(name).unwrap_or(&NULL)),
        Operand::Literal(Literal::Null) => Resolved::Json(&NULL),
        Operand::Literal(lit) => Resolved::Literal(lit),
    }
}

fn eval<R: FilterRow + ?Sized>(expr: &Expr, row: &R) -> bool {
    match expr {
        Expr::Or(a, b) => eval(a, row) || eval(b, row),
        Expr::And(a, b) => eval(a, row) && eval(b, row),
        Expr::Not(a) => !eval(a, row),
        Expr::Truthy(o) => match resolve(o, row) {
            Resolved::Json(v) => v.as_bool() == Some(true),
            Resolved::Literal(l) => *l == Literal::Bool(true),
        },
        Expr::Call(function, a, b) => {
            let (Some(a), Some(b)) = (text(resolve(a, row)), text(resolve(b, row))) else {
                return false;
            };
            let (a, b) = (a.to_lowercase(), b.to_lowercase());
            match function {
                Function::StartsWith => a.starts_with(&b),
                Function::EndsWith => a.ends_with(&b),
                Function::Contains => a.contains(&b),
            }
        }
        Expr::Compare(op, a, b) => {
            let ordering = compare(resolve(a, row), resolve(b, row));
            match op {
                CompareOp::Eq => ordering == Some(Ordering::Equal),
                CompareOp::Ne => ordering != Some(Ordering::Equal),
                CompareOp::Gt => ordering == Some(Ordering::Greater),
                CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
                CompareOp::Lt => ordering == Some(Ordering::Less),
                CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            }
        }
    }
}

fn text(r: Resolved<'_>) -> Option<String> {
    match r {
        Resolved::Json(Value::String(s)) => Some(s.clone()),
        Resolved::Literal(Literal::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn compare(a: Resolved<'_>, b: Resolved<'_>) -> Option<Ordering> {
    match (a, b) {
        (Resolved::Json(x), Resolved::Literal(l)) => compare_json_literal(x, l),
        (Resolved::Literal(l), Resolved::Json(x)) => {
            compare_json_literal(x, l).map(Ordering::reverse)
        }
        (Resolved::Json(x), Resolved::Json(y)) => compare_json(x, y),
        (Resolved::Literal(l), Resolved::Literal(m)) => compare_json_literal(&literal_json(l), m),
    }
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

fn compare_json(x: &Value, y: &Value) -> Option<Ordering> {
    match (x, y) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Number(_), Value::Number(_)) => decimal(x)?.partial_cmp(&decimal(y)?),
        (Value::String(a), Value::String(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => (x == y).then_some(Ordering::Equal),
    }
}

/// Strips `Namespace.Type'Member'` down to `Member`.
fn enum_member(s: &str) -> &str {
    match (s.find('\''), s.ends_with('\'')) {
        (Some(open), true) if open + 1 < s.len() => &s[open + 1..s.len() - 1],
        _ => s,
    }
}

fn compare_json_literal(x: &Value, lit: &Literal) -> Option<Ordering> {
    match lit {
        Literal::Null => x.is_null().then_some(Ordering::Equal),
        Literal::Bool(b) => Some(x.as_bool()?.cmp(b)),
        Literal::Number(d) => decimal(x)?.partial_cmp(d),
        Literal::String(s) => Some(x.as_str()?.to_lowercase().cmp(&s.to_lowercase())),
        Literal::Guid(g) => Some(Uuid::parse_str(x.as_str()?).ok()?.cmp(g)),
        Literal::Date(d) => {
            let s = x.as_str()?;
            let day = NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()?;
            Some(day.cmp(d))
        }
        Literal::DateTime(dt) => {
            let s = x.as_str()?;
            Some(DateTime::parse_from_rfc3339(s).ok()?.cmp(dt))
        }
        Literal::Enum { member, .. } => {
            let value = enum_member(x.as_str()?);
            Some(value.to_lowercase().cmp(&member.to_lowercase()))
        }
    }
}

fn literal_json(lit: &Literal) -> Value {
    match lit {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Number(d) => Value::String(d.to_string()),
        Literal::String(s) => Value::String(s.clone()),
        Literal::Guid(g) => Value::String(g.to_string()),
        Literal::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
        Literal::DateTime(dt) => Value::String(dt.to_rfc3339()),
        Literal::Enum { member, .. } => Value::String(member.clone()),
    }
}
