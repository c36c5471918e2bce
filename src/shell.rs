//! POSIX shell quoting, the one place where values become parts of remote command lines.

/// Quote a string for a POSIX shell so that it is passed as exactly one word, byte for byte.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%_-+=:,./".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Join words into a command line, each quoted.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

/// Split a command line like a POSIX shell does for `command:` (no expansion, quotes and
/// backslashes honoured). Returns `None` on an unterminated quote.
pub fn split(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => cur.push(c),
                            '\n' => {}
                            c => {
                                cur.push('\\');
                                cur.push(c);
                            }
                        },
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => cur.push(c),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_round_trips_through_split() {
        for s in [
            "plain",
            "",
            "it's",
            "a b",
            "$(rm -rf /)",
            "`x`",
            "line\nbreak",
            "ünï ☃",
            "\"q\"",
            "\\",
        ] {
            assert_eq!(split(&quote(s)).unwrap(), vec![s.to_string()], "{s:?}");
        }
    }

    #[test]
    fn split_like_a_shell() {
        assert_eq!(
            split(r#"echo "a b" 'c d' e\ f"#).unwrap(),
            ["echo", "a b", "c d", "e f"]
        );
        assert!(split("echo 'open").is_none());
    }
}
