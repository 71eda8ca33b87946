//! Tokens of the `$filter` grammar.

use super::error::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// A name: a property path (`a/b`), a keyword (`and`, `eq`, `true`) or a function.
    Ident(String),
    /// `'text'` with `''` unescaped.
    Str(String),
    /// A run starting with a digit or `-digit`: number, date, date-time or guid.
    Bare(String),
    /// `Namespace.Type'Member'`.
    Enum {
        type_name: String,
        member: String,
    },
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub token: Token,
    pub position: usize,
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '/' || c == '@'
}

fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == ':' || c == '.' || c == '+'
}

fn guid_at(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.len() < 36 {
        return None;
    }
    for (i, b) in bytes[..36].iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        };
        if !ok {
            return None;
        }
    }
    match text[36..].chars().next() {
        Some(c) if is_ident_char(c) || c == '-' => None,
        _ => Some(36),
    }
}

fn read_quoted(text: &str, start: usize) -> Result<(String, usize), FilterError> {
    // `start` is the byte index of the opening quote.
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                out.push('\'');
            } else {
                return Ok((out, start + 1 + i + 1));
            }
        } else {
            out.push(c);
        }
    }
    Err(FilterError::new(
        start,
        "string literal is not closed: end it with a single quote (double a quote inside it: '')",
    ))
}

pub(crate) fn tokenize(text: &str) -> Result<Vec<Spanned>, FilterError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        let start = pos;
        let token = match c {
            '(' => {
                pos += 1;
                Token::LParen
            }
            ')' => {
                pos += 1;
                Token::RParen
            }
            ',' => {
                pos += 1;
                Token::Comma
            }
            '\'' => {
                let (s, end) = read_quoted(text, pos)?;
                pos = end;
                Token::Str(s)
            }
            _ if guid_at(rest).is_some() => {
                pos += 36;
                Token::Bare(rest[..36].to_string())
            }
            _ if c.is_ascii_digit()
                || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) =>
            {
                let len = rest[1..]
                    .find(|ch: char| !is_bare_char(ch))
                    .map_or(rest.len(), |n| n + 1);
                pos += len;
                Token::Bare(rest[..len].to_string())
            }
            _ if c.is_ascii_alphabetic() || c == '_' || c == '$' || c == '@' => {
                let len = rest[1..]
                    .find(|ch: char| !is_ident_char(ch))
                    .map_or(rest.len(), |n| n + 1);
                let name = rest[..len].to_string();
                pos += len;
                if text[pos..].starts_with('\'') {
                    let (member, end) = read_quoted(text, pos)?;
                    pos = end;
                    Token::Enum {
                        type_name: name,
                        member,
                    }
                } else {
                    Token::Ident(name)
                }
            }
            other => {
                return Err(FilterError::new(
                    pos,
                    format!("unexpected character '{other}'"),
                ));
            }
        };
        out.push(Spanned {
            token,
            position: start,
        });
    }
    Ok(out)
}
