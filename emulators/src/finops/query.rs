//! finops `$filter` wildcards: in a string equality the service reads `*`
//! as "any characters", so `Name eq '*retail*'` matches every name that
//! contains "retail" ("Open Data Protocol (OData)", query options:
//! <https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata>).
//!
//! [`FinopsFilter`] splits a parsed [`Filter`] into its `and`/`or`/`not`
//! structure, a glob per wildcard equality, and the other comparisons,
//! each written back as text and parsed again, so that the shared
//! evaluator decides them exactly as it does everywhere else.

use dualwrite::odata::{CompareOp, Expr, Filter, Function, Literal, Operand};

/// A `$filter` with finops wildcard semantics.
#[derive(Debug)]
pub(crate) enum FinopsFilter {
    /// `a or b`.
    Or(Box<FinopsFilter>, Box<FinopsFilter>),
    /// `a and b`.
    And(Box<FinopsFilter>, Box<FinopsFilter>),
    /// `not a`.
    Not(Box<FinopsFilter>),
    /// `field eq 'a*b'` (`negate` for `ne`).
    Glob {
        field: String,
        parts: Vec<String>,
        negate: bool,
    },
    /// Anything else, evaluated by the shared evaluator.
    Plain(Filter),
}

impl FinopsFilter {
    /// Builds the finops form of a parsed filter.
    pub(crate) fn new(filter: &Filter) -> Self {
        build(filter.expr()).unwrap_or_else(|| Self::Plain(filter.clone()))
    }

    /// True when the row satisfies the filter.
    pub(crate) fn matches(&self, row: &serde_json::Map<String, serde_json::Value>) -> bool {
        match self {
            Self::Or(a, b) => a.matches(row) || b.matches(row),
            Self::And(a, b) => a.matches(row) && b.matches(row),
            Self::Not(a) => !a.matches(row),
            Self::Glob {
                field,
                parts,
                negate,
            } => {
                let hit = row
                    .get(field)
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|v| glob(&v.to_lowercase(), parts));
                hit != *negate
            }
            Self::Plain(f) => f.matches(row),
        }
    }
}

/// `None` when a leaf cannot be written back as text (then the whole
/// filter is evaluated as parsed, without wildcards).
fn build(expr: &Expr) -> Option<FinopsFilter> {
    Some(match expr {
        Expr::Or(a, b) => FinopsFilter::Or(Box::new(build(a)?), Box::new(build(b)?)),
        Expr::And(a, b) => FinopsFilter::And(Box::new(build(a)?), Box::new(build(b)?)),
        Expr::Not(a) => FinopsFilter::Not(Box::new(build(a)?)),
        Expr::Compare(
            op @ (CompareOp::Eq | CompareOp::Ne),
            Operand::Field(field),
            Operand::Literal(Literal::String(pattern)),
        ) if pattern.contains('*') => FinopsFilter::Glob {
            field: field.clone(),
            parts: pattern
                .to_lowercase()
                .split('*')
                .map(str::to_string)
                .collect(),
            negate: *op == CompareOp::Ne,
        },
        leaf => FinopsFilter::Plain(Filter::parse(&text(leaf)?).ok()?),
    })
}

/// `*` matches any run of characters; `parts` are the text between stars.
fn glob(value: &str, parts: &[String]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return value.is_empty();
    };
    let Some(mut rest_of_value) = value.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return rest_of_value.is_empty();
    };
    for part in middle {
        match rest_of_value.find(part.as_str()) {
            Some(i) => rest_of_value = &rest_of_value[i + part.len()..],
            None => return false,
        }
    }
    rest_of_value.len() >= last.len() && rest_of_value.ends_with(last.as_str())
}

fn text(expr: &Expr) -> Option<String> {
    Some(match expr {
        Expr::Compare(op, a, b) => {
            let op = match op {
                CompareOp::Eq => "eq",
                CompareOp::Ne => "ne",
                CompareOp::Gt => "gt",
                CompareOp::Ge => "ge",
                CompareOp::Lt => "lt",
                CompareOp::Le => "le",
            };
            format!("{} {op} {}", operand(a), operand(b))
        }
        Expr::Call(function, a, b) => {
            let name = match function {
                Function::StartsWith => "startswith",
                Function::EndsWith => "endswith",
                Function::Contains => "contains",
            };
            format!("{name}({},{})", operand(a), operand(b))
        }
        Expr::Truthy(a) => operand(a),
        Expr::Or(..) | Expr::And(..) | Expr::Not(..) => return None,
    })
}

fn operand(operand: &Operand) -> String {
    match operand {
        Operand::Field(name) => name.clone(),
        Operand::Literal(literal) => match literal {
            Literal::Null => "null".into(),
            Literal::Bool(b) => b.to_string(),
            Literal::Number(n) => n.to_string(),
            Literal::String(s) => format!("'{}'", s.replace('\'', "''")),
            Literal::Guid(g) => g.to_string(),
            Literal::Date(d) => d.format("%Y-%m-%d").to_string(),
            Literal::DateTime(t) => t.to_rfc3339(),
            Literal::Enum { type_name, member } => format!("{type_name}'{member}'"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stars_match_any_run_of_characters() {
        let row = json!({"Name": "Contoso Retail Store", "Kind": "Organization", "Limit": 5});
        let row = row.as_object().expect("object");
        for (filter, expected) in [
            ("Name eq '*retail*'", true),
            ("Name eq 'contoso*'", true),
            ("Name eq '*store'", true),
            ("Name eq 'C*R*S*'", true),
            ("Name eq '*shop*'", false),
            ("Name eq 'retail*'", false),
            ("Name ne '*retail*'", false),
            ("Name eq '*retail*' and Limit gt 3", true),
            ("Name eq '*retail*' and Limit gt 7", false),
            ("not (Name eq '*x*') or Kind eq 'Person'", true),
            ("Name eq 'Contoso Retail Store'", true),
        ] {
            let parsed = Filter::parse(filter).expect("parses");
            assert_eq!(
                FinopsFilter::new(&parsed).matches(row),
                expected,
                "{filter}"
            );
        }
    }
}
