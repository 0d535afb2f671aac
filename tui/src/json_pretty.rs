//! Re-indents JSON text for reading without parsing it into a map, so the payload keeps the key
//! order and number spelling it was sent with.

const INDENT: &str = "  ";

/// Re-indents `raw` JSON with two spaces per level. Text that is not valid JSON comes back
/// re-indented as far as its brackets allow, never rejected, because it is only displayed.
pub fn pretty(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    while let Some(current) = chars.next() {
        if in_string {
            out.push(current);
            if escaped {
                escaped = false;
            } else if current == '\\' {
                escaped = true;
            } else if current == '"' {
                in_string = false;
            }
            continue;
        }
        match current {
            '"' => {
                in_string = true;
                out.push(current);
            }
            '{' | '[' => {
                out.push(current);
                skip_whitespace(&mut chars);
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(current);
            }
            ',' => {
                out.push(current);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            other if other.is_whitespace() => {}
            other => out.push(other),
        }
    }
    out
}

fn skip_whitespace(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|next| next.is_whitespace()) {
        chars.next();
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_keeps_key_order() {
        let raw = r#"{"z":1,"a":{"list":[1,2],"empty":{},"none":[]},"s":"x, {y}: \"q\""}"#;
        let expected = "{\n  \"z\": 1,\n  \"a\": {\n    \"list\": [\n      1,\n      2\n    ],\n    \"empty\": {},\n    \"none\": []\n  },\n  \"s\": \"x, {y}: \\\"q\\\"\"\n}";
        assert_eq!(pretty(raw), expected);
    }

    #[test]
    fn pretty_normalizes_existing_whitespace() {
        assert_eq!(pretty("{ \"a\" :\n 1 }"), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn pretty_survives_unbalanced_text() {
        assert_eq!(pretty("]]"), "\n]\n]");
        assert_eq!(pretty("\"open"), "\"open");
    }

    #[test]
    fn pretty_output_parses_to_same_value() {
        let raw = belter_common::samples::sample_body(belter_common::EventType::CsatReceived);
        let before: serde_json::Value = serde_json::from_str(raw).unwrap();
        let after: serde_json::Value = serde_json::from_str(&pretty(raw)).unwrap();
        assert_eq!(before, after);
    }
}
