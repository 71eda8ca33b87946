//! The `$filter` expression tree and its recursive-descent parser.
//!
//! Precedence, loosest first: `or`, `and`, `not`, comparisons, primaries
//! (parentheses, function calls, properties, literals).

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::FilterError;
use super::lexer::{Spanned, Token, tokenize};

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
    text: String,
}

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// `left op right`.
    Compare(CompareOp, Operand, Operand),
    /// `startswith(a, b)` and friends.
    Call(Function, Operand, Operand),
    /// A lone boolean property or literal: true when it is `true`.
    Truthy(Operand),
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// The string functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `startswith(haystack, prefix)`
    StartsWith,
    /// `endswith(haystack, suffix)`
    EndsWith,
    /// `contains(haystack, needle)`
    Contains,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A property of the row, by name.
    Field(String),
    /// A constant.
    Literal(Literal),
}

/// A constant in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// `true`, `false`
    Bool(bool),
    /// `42`, `-1.5`, `1e3`: exact decimal.
    Number(Decimal),
    /// `'text'`
    String(String),
    /// `00000000-0000-0000-0000-000000000001`
    Guid(Uuid),
    /// `2024-01-31`
    Date(NaiveDate),
    /// `2024-01-31T10:00:00Z`
    DateTime(DateTime<FixedOffset>),
    /// `Microsoft.Dynamics.DataEntities.NoYes'Yes'`
    Enum {
        /// The qualified enum type name.
        type_name: String,
        /// The member name.
        member: String,
    },
}

impl Filter {
    /// Parses a `$filter` expression.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(FilterError::new(
                0,
                "the filter is empty: write an expression such as name eq 'x'",
            ));
        }
        let mut parser = Parser {
            tokens,
            index: 0,
            end: text.len(),
            depth: 0,
        };
        let expr = parser.or()?;
        if let Some(extra) = parser.tokens.get(parser.index) {
            return Err(FilterError::new(
                extra.position,
                "unexpected text after the end of the expression: join expressions with 'and' or 'or'",
            ));
        }
        Ok(Self {
            expr,
            text: text.to_string(),
        })
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The text this filter was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Every property name the filter reads, in order of appearance.
    pub fn field_names(&self) -> Vec<&str> {
        fn operand<'a>(o: &'a Operand, out: &mut Vec<&'a str>) {
            if let Operand::Field(name) = o {
                out.push(name);
            }
        }
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Or(a, b) | Expr::And(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare(_, a, b) | Expr::Call(_, a, b) => {
                    operand(a, out);
                    operand(b, out);
                }
                Expr::Truthy(a) => operand(a, out),
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }
}

impl FromStr for Filter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    index: usize,
    end: usize,
    depth: usize,
}

/// Deepest nesting of parentheses and `not` accepted, so hostile input
/// cannot exhaust the stack.
const MAX_DEPTH: usize = 256;

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.index)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |t| t.position)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Ident(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), FilterError> {
        match self.peek() {
            Some(t) if t.token == token => {
                self.index += 1;
                Ok(())
            }
            _ => Err(FilterError::new(
                self.position(),
                format!("expected {what}"),
            )),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.index += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.index += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                self.position(),
                format!("the filter nests deeper than {MAX_DEPTH} levels: simplify it"),
            ));
        }
        let result = if self.keyword("not") {
            self.index += 1;
            self.unary().map(|e| Expr::Not(Box::new(e)))
        } else {
            self.comparison()
        };
        self.depth -= 1;
        result
    }

    fn compare_op(&self) -> Option<CompareOp> {
        let Some(Spanned {
            token: Token::Ident(w),
            ..
        }) = self.peek()
        else {
            return None;
        };
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        if matches!(
            self.peek(),
            Some(Spanned {
                token: Token::LParen,
                ..
            })
        ) {
            self.index += 1;
            let inner = self.or()?;
            self.expect(Token::RParen, "')' to close the parenthesis")?;
            return Ok(inner);
        }
        if let Some((function, a, b)) = self.call()? {
            return Ok(Expr::Call(function, a, b));
        }
        let left = self.operand()?;
        match self.compare_op() {
            Some(op) => {
                self.index += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(op, left, right))
            }
            None => Ok(Expr::Truthy(left)),
        }
    }

    fn call(&mut self) -> Result<Option<(Function, Operand, Operand)>, FilterError> {
        let Some(Spanned {
            token: Token::Ident(name),
            position,
        }) = self.peek().cloned()
        else {
            return Ok(None);
        };
        let is_call = matches!(
            self.tokens.get(self.index + 1),
            Some(Spanned {
                token: Token::LParen,
                ..
            })
        );
        if !is_call {
            return Ok(None);
        }
        let function = match name.to_ascii_lowercase().as_str() {
            "startswith" => Function::StartsWith,
            "endswith" => Function::EndsWith,
            "contains" => Function::Contains,
            _ => {
                return Err(FilterError::new(
                    position,
                    format!("unknown function '{name}': use startswith, endswith or contains"),
                ));
            }
        };
        self.index += 2;
        let a = self.operand()?;
        self.expect(Token::Comma, "',' between the two arguments")?;
        let b = self.operand()?;
        self.expect(Token::RParen, "')' to close the function call")?;
        Ok(Some((function, a, b)))
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let position = self.position();
        let Some(spanned) = self.peek().cloned() else {
            return Err(FilterError::new(
                position,
                "expected a property name or a value",
            ));
        };
        self.index += 1;
        Ok(match spanned.token {
            Token::Ident(name) => match name.as_str() {
                "null" => Operand::Literal(Literal::Null),
                "true" => Operand::Literal(Literal::Bool(true)),
                "false" => Operand::Literal(Literal::Bool(false)),
                _ if is_keyword(&name) => {
                    return Err(FilterError::new(
                        position,
                        format!("expected a property name or a value, found the keyword '{name}'"),
                    ));
                }
                _ => Operand::Field(name),
            },
            Token::Str(s) => Operand::Literal(Literal::String(s)),
            Token::Enum { type_name, member } => {
                Operand::Literal(Literal::Enum { type_name, member })
            }
            Token::Bare(text) => Operand::Literal(bare_literal(&text, position)?),
            Token::LParen | Token::RParen | Token::Comma => {
                return Err(FilterError::new(
                    position,
                    "expected a property name or a value",
                ));
            }
        })
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "and" | "or" | "not" | "eq" | "ne" | "gt" | "ge" | "lt" | "le"
    )
}

fn bare_literal(text: &str, position: usize) -> Result<Literal, FilterError> {
    if text.len() == 36
        && text.matches('-').count() == 4
        && let Ok(guid) = Uuid::parse_str(text)
    {
        return Ok(Literal::Guid(guid));
    }
    if text.contains('T') {
        return DateTime::parse_from_rfc3339(text)
            .map(Literal::DateTime)
            .map_err(|_| {
                FilterError::new(
                    position,
                    format!("'{text}' is not a date-time: write 2024-01-31T10:00:00Z"),
                )
            });
    }
    if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Literal::Date)
            .map_err(|_| {
                FilterError::new(
                    position,
                    format!("'{text}' is not a date: write 2024-01-31"),
                )
            });
    }
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map(Literal::Number)
        .map_err(|_| {
            FilterError::new(
                position,
                format!("'{text}' is not a number, date, date-time or guid"),
            )
        })
}
