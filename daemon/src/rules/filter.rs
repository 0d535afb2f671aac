//! Endpoint payload filters: comparisons on an event's fields combined with `&&`/`and`,
//! `||`/`or`, `!`/`not` and parentheses, such as
//! `data.brand == "northwind" && data.level >= 0.8`.
//!
//! A path is `event` (the event type) or `data.` followed by dot-separated keys; a number key
//! indexes an array. Values are strings in double quotes, numbers, `true`, `false` and `null`.
//! A comparison whose field is missing, or whose types differ, is false, `!=` included.

use std::fmt;

use serde_json::Value;

/// Maximum filter length, in bytes.
pub(crate) const MAX_FILTER_LEN: usize = 2_048;
/// Deepest nesting of parentheses and `!` accepted.
const MAX_DEPTH: usize = 32;

/// Characters of a long filter shown before the mistake in an error.
const EXCERPT_BEFORE: usize = 60;

/// Characters of a long filter shown after the mistake in an error.
const EXCERPT_AFTER: usize = 20;

/// A filter that does not parse, with the column of the mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at column {column}: {message}\n  {}", self.pointer())]
pub(crate) struct FilterError {
    /// The byte column of the mistake, from 1.
    pub(crate) column: usize,
    pub(crate) message: String,
    text: String,
}

impl FilterError {
    /// Renders the filter, or for a long one the part around the mistake, over a caret line
    /// that points at the mistake.
    fn pointer(&self) -> String {
        let mistake = self.column.saturating_sub(1).min(self.text.len());
        let mut start = mistake.saturating_sub(EXCERPT_BEFORE);
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (mistake + EXCERPT_AFTER).min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        let before = if start > 0 { "…" } else { "" };
        let after = if end < self.text.len() { "…" } else { "" };
        let caret_at = before.chars().count() + self.text[start..mistake].chars().count();
        format!(
            "{before}{}{after}\n  {:caret_at$}^",
            &self.text[start..end],
            ""
        )
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    Compare {
        path: Vec<String>,
        op: CompareOp,
        value: Value,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Path(Vec<String>),
    Literal(Value),
    Op(CompareOp),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Filter {
    /// Parses a filter, or returns an error that points at the mistake.
    pub(crate) fn parse(text: &str) -> Result<Self, FilterError> {
        if text.len() > MAX_FILTER_LEN {
            return Err(error_at(
                text,
                MAX_FILTER_LEN,
                &format!("the filter is longer than {MAX_FILTER_LEN} bytes"),
            ));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            text,
            tokens,
            next: 0,
        };
        let filter = parser.or_expression(0)?;
        if let Some((token, column)) = parser.peek() {
            return Err(error_at(
                text,
                column,
                &format!(
                    "unexpected {}, expected && or || or the end",
                    describe(token)
                ),
            ));
        }
        Ok(filter)
    }

    /// Returns whether an event passes the filter.
    pub(crate) fn matches(&self, event_type: &str, data: &Value) -> bool {
        match self {
            Filter::And(left, right) => {
                left.matches(event_type, data) && right.matches(event_type, data)
            }
            Filter::Or(left, right) => {
                left.matches(event_type, data) || right.matches(event_type, data)
            }
            Filter::Not(inner) => !inner.matches(event_type, data),
            Filter::Compare { path, op, value } => {
                let event_value;
                let found = if path.first().map(String::as_str) == Some("event") {
                    event_value = Value::String(event_type.to_owned());
                    Some(&event_value)
                } else {
                    lookup(data, &path[1..])
                };
                found.is_some_and(|found| compare(found, *op, value))
            }
        }
    }
}

fn lookup<'a>(data: &'a Value, keys: &[String]) -> Option<&'a Value> {
    let mut current = data;
    for key in keys {
        current = match current {
            Value::Object(map) => map.get(key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn compare(found: &Value, op: CompareOp, expected: &Value) -> bool {
    let ordering = match (found, expected) {
        (Value::Number(left), Value::Number(right)) => compare_numbers(left, right),
        (Value::String(left), Value::String(right)) => Some(left.cmp(right)),
        (Value::Bool(left), Value::Bool(right)) => {
            return match op {
                CompareOp::Eq => left == right,
                CompareOp::Ne => left != right,
                _ => false,
            }
        }
        (Value::Null, Value::Null) => return op == CompareOp::Eq,
        (_, Value::Null) => return op == CompareOp::Ne,
        _ => return false,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
    }
}

/// Orders two JSON numbers, exactly when both are integers, because integers past 2^53 lose
/// their last digits as `f64`.
fn compare_numbers(
    left: &serde_json::Number,
    right: &serde_json::Number,
) -> Option<std::cmp::Ordering> {
    if let (Some(left), Some(right)) = (left.as_i64(), right.as_i64()) {
        return Some(left.cmp(&right));
    }
    if let (Some(left), Some(right)) = (left.as_u64(), right.as_u64()) {
        return Some(left.cmp(&right));
    }
    left.as_f64()?.partial_cmp(&right.as_f64()?)
}

fn error_at(text: &str, column: usize, message: &str) -> FilterError {
    FilterError {
        column: column + 1,
        message: message.to_owned(),
        text: text.to_owned(),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Path(path) => format!("field {}", path.join(".")),
        Token::Literal(value) => format!("value {value}"),
        Token::Op(op) => format!("operator {op}"),
        Token::And => "&&".to_owned(),
        Token::Or => "||".to_owned(),
        Token::Not => "!".to_owned(),
        Token::Open => "(".to_owned(),
        Token::Close => ")".to_owned(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, FilterError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let byte = bytes[at];
        let two = text.get(at..at + 2).unwrap_or_default();
        let token = match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {
                at += 1;
                continue;
            }
            b'(' => {
                at += 1;
                Token::Open
            }
            b')' => {
                at += 1;
                Token::Close
            }
            _ if two == "&&" => {
                at += 2;
                Token::And
            }
            _ if two == "||" => {
                at += 2;
                Token::Or
            }
            _ if two == "==" || two == "!=" || two == "<=" || two == ">=" => {
                at += 2;
                Token::Op(match two {
                    "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<=" => CompareOp::Le,
                    _ => CompareOp::Ge,
                })
            }
            b'<' => {
                at += 1;
                Token::Op(CompareOp::Lt)
            }
            b'>' => {
                at += 1;
                Token::Op(CompareOp::Gt)
            }
            b'!' => {
                at += 1;
                Token::Not
            }
            b'=' => {
                return Err(error_at(text, start, "use == to compare"));
            }
            b'"' => {
                let (value, end) = string_literal(text, start)?;
                at = end;
                Token::Literal(Value::String(value))
            }
            b'-' | b'0'..=b'9' => {
                let end = text[start..]
                    .find(|c: char| {
                        !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
                    })
                    .map_or(text.len(), |offset| start + offset);
                if text[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    let word_end = text[end..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(text.len(), |offset| end + offset);
                    return Err(error_at(
                        text,
                        start,
                        &format!(
                            "invalid number {:?}: write a decimal number such as 16 or 0.8",
                            &text[start..word_end]
                        ),
                    ));
                }
                let number: serde_json::Number = text[start..end].parse().map_err(|_| {
                    error_at(
                        text,
                        start,
                        &format!("invalid number {:?}", &text[start..end]),
                    )
                })?;
                at = end;
                Token::Literal(Value::Number(number))
            }
            _ if byte.is_ascii_alphabetic() || byte == b'_' => {
                let end = text[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.')))
                    .map_or(text.len(), |offset| start + offset);
                at = end;
                word_token(text, start, &text[start..end])?
            }
            b'.' => {
                return Err(error_at(
                    text,
                    start,
                    "a number must start with a digit, such as 0.8",
                ));
            }
            b'\'' => {
                return Err(error_at(
                    text,
                    start,
                    "strings take double quotes, such as \"northwind\"",
                ));
            }
            _ => {
                let shown = text[start..].chars().next().unwrap_or(' ');
                return Err(error_at(
                    text,
                    start,
                    &format!(
                        "unexpected character {shown:?}: write comparisons such as data.level >= 0.8"
                    ),
                ));
            }
        };
        tokens.push((token, start));
    }
    Ok(tokens)
}

fn word_token(text: &str, start: usize, word: &str) -> Result<Token, FilterError> {
    Ok(match word {
        "and" => Token::And,
        "or" => Token::Or,
        "not" => Token::Not,
        "true" => Token::Literal(Value::Bool(true)),
        "false" => Token::Literal(Value::Bool(false)),
        "null" => Token::Literal(Value::Null),
        "event" => Token::Path(vec!["event".to_owned()]),
        _ if ["true", "false", "null"]
            .iter()
            .any(|literal| word.eq_ignore_ascii_case(literal)) =>
        {
            return Err(error_at(
                text,
                start,
                &format!(
                    "invalid value {word:?}: write {} in lower case",
                    word.to_ascii_lowercase()
                ),
            ));
        }
        _ if ["nan", "inf", "infinity"]
            .iter()
            .any(|literal| word.eq_ignore_ascii_case(literal)) =>
        {
            return Err(error_at(
                text,
                start,
                &format!("invalid value {word:?}: compare with a finite number such as 0.8"),
            ));
        }
        _ => {
            let parts: Vec<String> = word.split('.').map(str::to_owned).collect();
            if parts[0] != "data" || parts.len() < 2 || parts.iter().any(String::is_empty) {
                return Err(error_at(
                    text,
                    start,
                    &format!("unknown field {word:?}: write event, or data. followed by a field such as data.brand"),
                ));
            }
            Token::Path(parts)
        }
    })
}

fn string_literal(text: &str, start: usize) -> Result<(String, usize), FilterError> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Ok((value, start + 1 + offset + 1)),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                _ => {
                    return Err(error_at(
                        text,
                        start + 1 + offset,
                        "only \\\" and \\\\ escapes are allowed in strings",
                    ))
                }
            },
            _ => value.push(c),
        }
    }
    Err(error_at(text, start, "string is not closed with \""))
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Token, usize)>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<(&Token, usize)> {
        self.tokens
            .get(self.next)
            .map(|(token, column)| (token, *column))
    }

    fn end_column(&self) -> usize {
        self.text.len()
    }

    fn or_expression(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and_expression(depth)?;
        while matches!(self.peek(), Some((Token::Or, _))) {
            self.next += 1;
            let right = self.and_expression(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expression(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth)?;
        while matches!(self.peek(), Some((Token::And, _))) {
            self.next += 1;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            let column = self.peek().map_or(self.end_column(), |(_, column)| column);
            return Err(error_at(
                self.text,
                column,
                &format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        match self.peek() {
            Some((Token::Not, _)) => {
                self.next += 1;
                Ok(Filter::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some((Token::Open, column)) => {
                self.next += 1;
                let inner = self.or_expression(depth + 1)?;
                match self.peek() {
                    Some((Token::Close, _)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some((token, at)) => Err(error_at(
                        self.text,
                        at,
                        &format!(
                            "expected ) to close the ( at column {}, found {}",
                            column + 1,
                            describe(token)
                        ),
                    )),
                    None => Err(error_at(
                        self.text,
                        self.end_column(),
                        &format!("expected ) to close the ( at column {}", column + 1),
                    )),
                }
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let path = match self.peek() {
            Some((Token::Path(path), _)) => path.clone(),
            Some((token, column)) => {
                return Err(error_at(
                    self.text,
                    column,
                    &format!(
                        "expected a field such as data.brand, found {}",
                        describe(token)
                    ),
                ))
            }
            None => {
                return Err(error_at(
                    self.text,
                    self.end_column(),
                    "expected a comparison such as data.brand == \"northwind\"",
                ))
            }
        };
        self.next += 1;
        let op = match self.peek() {
            Some((Token::Op(op), _)) => *op,
            Some((token, column)) => {
                return Err(error_at(
                    self.text,
                    column,
                    &format!(
                        "expected ==, !=, <, <=, > or >= after {}, found {}",
                        path.join("."),
                        describe(token)
                    ),
                ))
            }
            None => {
                return Err(error_at(
                    self.text,
                    self.end_column(),
                    &format!("expected ==, !=, <, <=, > or >= after {}", path.join(".")),
                ))
            }
        };
        self.next += 1;
        let value = match self.peek() {
            Some((Token::Literal(value), _)) => value.clone(),
            Some((token, column)) => {
                return Err(error_at(
                    self.text,
                    column,
                    &format!("expected a value after {op}, found {}", describe(token)),
                ))
            }
            None => {
                return Err(error_at(
                    self.text,
                    self.end_column(),
                    &format!("expected a value after {op}"),
                ))
            }
        };
        self.next += 1;
        Ok(Filter::Compare { path, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "brand": "northwind",
            "level": 0.85,
            "agent": null,
            "flagged": true,
            "criteria": [{"criterion": "greeting", "score": 40}],
        })
    }

    fn passes(filter: &str) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|error| panic!("{filter}: {error}"))
            .matches("frustration.detected", &data())
    }

    #[test]
    fn comparisons_match() {
        let cases = [
            ("data.brand == \"northwind\"", true),
            ("data.brand != \"northwind\"", false),
            ("data.level >= 0.8", true),
            ("data.level > 0.85", false),
            ("data.level < 1", true),
            ("data.level <= 0.85", true),
            ("data.flagged == true", true),
            ("data.agent == null", true),
            ("data.brand != null", true),
            ("data.criteria.0.score < 50", true),
            ("event == \"frustration.detected\"", true),
            ("data.missing == 1", false),
            ("data.missing != 1", false),
            ("data.brand > 3", false),
        ];
        for (filter, expected) in cases {
            assert_eq!(passes(filter), expected, "{filter}");
        }
    }

    #[test]
    fn logic_combines_and_groups() {
        let cases = [
            ("data.brand == \"northwind\" && data.level >= 0.8", true),
            ("data.brand == \"contoso\" and data.level >= 0.8", false),
            ("data.brand == \"contoso\" || data.level >= 0.8", true),
            ("data.brand == \"contoso\" or data.level >= 0.9", false),
            ("!(data.level >= 0.8)", false),
            ("not data.brand == \"contoso\"", true),
            (
                "data.level < 0 || data.level > 0.5 && data.brand == \"x\"",
                false,
            ),
            (
                "(data.level < 0 || data.level > 0.5) && data.brand == \"northwind\"",
                true,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(passes(filter), expected, "{filter}");
        }
    }

    #[test]
    fn errors_point_at_mistake() {
        let cases = [
            ("data.level >= ", 15, "expected a value after >="),
            ("data.level = 1", 12, "use =="),
            ("brand == \"x\"", 1, "unknown field"),
            ("data.brand == \"x", 15, "not closed"),
            ("(data.level > 1", 16, "expected )"),
            ("data.level > 1 data.brand == \"x\"", 16, "unexpected field"),
            ("data.level ~ 1", 12, "unexpected character"),
            ("data.level >= .8", 15, "start with a digit"),
            ("data.brand == 'x'", 15, "double quotes"),
            ("", 1, "expected a comparison"),
        ];
        for (filter, column, expected) in cases {
            let error = Filter::parse(filter).unwrap_err();
            assert_eq!(error.column, column, "{filter}: {error}");
            assert!(error.message.contains(expected), "{filter}: {error}");
        }
    }

    #[test]
    fn large_integers_compare_exactly() {
        let data = json!({"big": 9_007_199_254_740_992_u64, "small": -3});
        let matches = |filter: &str| {
            Filter::parse(filter)
                .unwrap_or_else(|error| panic!("{filter}: {error}"))
                .matches("csat.received", &data)
        };
        assert!(!matches("data.big == 9007199254740993"));
        assert!(matches("data.big < 9007199254740993"));
        assert!(matches("data.big == 9007199254740992"));
        assert!(matches("data.small < 9007199254740993"));
        assert!(matches("data.small == -3.0"));
    }

    #[test]
    fn value_mistakes_are_named() {
        let cases = [
            ("data.flagged == TRUE", "write true in lower case"),
            ("data.agent == Null", "write null in lower case"),
            ("data.level < NaN", "finite number"),
            ("data.level < inf", "finite number"),
            ("data.level == 0x10", "invalid number \"0x10\""),
            ("data.level == 1e5x", "invalid number \"1e5x\""),
        ];
        for (filter, expected) in cases {
            let error = Filter::parse(filter).unwrap_err();
            assert!(error.message.contains(expected), "{filter}: {error}");
        }
    }

    #[test]
    fn long_filter_error_shows_excerpt() {
        let filter = format!(
            "{} && data.level = 1",
            "data.level > 0 && ".repeat(100).trim_end_matches(" && ")
        );
        let error = Filter::parse(&filter).unwrap_err();
        let text = error.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].chars().count() < 100, "{text}");
        assert!(lines[1].starts_with("  …"), "{text}");
        let caret = lines[2].chars().count() - 1;
        assert_eq!(lines[2].trim(), "^", "{text}");
        assert_eq!(lines[1].chars().nth(caret), Some('='), "{text}");
        let short = Filter::parse("data.level = 1").unwrap_err().to_string();
        assert!(
            short.ends_with("\n  data.level = 1\n             ^"),
            "{short}"
        );
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let filter = format!("{}data.level > 1{}", "(".repeat(100), ")".repeat(100));
        let error = Filter::parse(&filter).unwrap_err();
        assert!(error.message.contains("nested deeper"), "{error}");
    }
}
