//! Re-indents JSON text for reading while keeping its keys in their original order, which a
//! round trip through `serde_json::Value` without the `preserve_order` feature would sort.

/// Spaces per nesting level.
const INDENT: &str = "  ";

/// Re-indents valid JSON text with two spaces per level. Text that is not valid JSON comes out
/// re-spaced but otherwise unchanged.
pub(crate) fn indent_json(text: &str) -> String {
    let mut output = String::with_capacity(text.len() * 2);
    let mut depth: usize = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut characters = text.chars().peekable();

    while let Some(character) = characters.next() {
        if in_string {
            output.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                output.push(character);
            }
            '{' | '[' => {
                output.push(character);
                skip_whitespace(&mut characters);
                let closing = if character == '{' { '}' } else { ']' };
                if characters.peek() == Some(&closing) {
                    // An empty object or array stays on one line.
                    characters.next();
                    output.push(closing);
                } else {
                    depth += 1;
                    push_newline(&mut output, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                push_newline(&mut output, depth);
                output.push(character);
            }
            ',' => {
                output.push(',');
                push_newline(&mut output, depth);
            }
            ':' => output.push_str(": "),
            ' ' | '\t' | '\n' | '\r' => {}
            _ => output.push(character),
        }
    }
    output
}

fn skip_whitespace(characters: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while characters
        .peek()
        .is_some_and(|character| matches!(character, ' ' | '\t' | '\n' | '\r'))
    {
        characters.next();
    }
}

fn push_newline(output: &mut String, depth: usize) {
    output.push('\n');
    for _ in 0..depth {
        output.push_str(INDENT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order() {
        assert_eq!(
            indent_json(r#"{"z":1,"a":{"m":[1,2],"b":"x"}}"#),
            "{\n  \"z\": 1,\n  \"a\": {\n    \"m\": [\n      1,\n      2\n    ],\n    \"b\": \"x\"\n  }\n}"
        );
    }

    #[test]
    fn leaves_strings_alone() {
        let text = r#"{"text":"a, b: {c} [d] \"e\" \\","n":null}"#;
        assert_eq!(
            indent_json(text),
            "{\n  \"text\": \"a, b: {c} [d] \\\"e\\\" \\\\\",\n  \"n\": null\n}"
        );
    }

    #[test]
    fn empty_containers_stay_inline() {
        assert_eq!(
            indent_json(r#"{"a":{},"b":[ ]}"#),
            "{\n  \"a\": {},\n  \"b\": []\n}"
        );
    }

    #[test]
    fn existing_whitespace_is_replaced() {
        assert_eq!(indent_json("{ \"a\" :\n 1 }"), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn output_is_the_same_json() {
        let text =
            r#"{"event":"csat.received","data":{"rating":4,"tags":["x","y"],"note":"ok: {fine}"}}"#;
        let before: serde_json::Value = serde_json::from_str(text).unwrap();
        let after: serde_json::Value = serde_json::from_str(&indent_json(text)).unwrap();
        assert_eq!(before, after);
    }
}
