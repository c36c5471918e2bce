//! JSON text as Python's `json.dumps` writes it, which is what Ansible's `to_json` and
//! `to_nice_json` give: `", "` and `": "` between items (or the lines of `indent`), non-ASCII
//! characters as `\uXXXX` unless `ensure_ascii=False`, keys sorted on request.

use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};
use std::io::{self, Write};

/// How `json.dumps` was asked to write.
pub struct Style {
    /// `indent=N`: one item a line (`to_nice_json`); else one line with `", "`.
    pub indent: Option<usize>,
    pub ensure_ascii: bool,
    pub sort_keys: bool,
}

/// Python's one-line layout, or serde_json's pretty one (which is Python's with `indent`).
enum Layout<'a> {
    Line,
    Pretty(PrettyFormatter<'a>),
}

struct PyFormatter<'a> {
    layout: Layout<'a>,
    ensure_ascii: bool,
}

impl Formatter for PyFormatter<'_> {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => w.write_all(b"["),
            Layout::Pretty(p) => p.begin_array(w),
        }
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => w.write_all(b"]"),
            Layout::Pretty(p) => p.end_array(w),
        }
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line if first => Ok(()),
            Layout::Line => w.write_all(b", "),
            Layout::Pretty(p) => p.begin_array_value(w, first),
        }
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => Ok(()),
            Layout::Pretty(p) => p.end_array_value(w),
        }
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => w.write_all(b"{"),
            Layout::Pretty(p) => p.begin_object(w),
        }
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => w.write_all(b"}"),
            Layout::Pretty(p) => p.end_object(w),
        }
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line if first => Ok(()),
            Layout::Line => w.write_all(b", "),
            Layout::Pretty(p) => p.begin_object_key(w, first),
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => w.write_all(b": "),
            Layout::Pretty(p) => p.begin_object_value(w),
        }
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        match &mut self.layout {
            Layout::Line => Ok(()),
            Layout::Pretty(p) => p.end_object_value(w),
        }
    }
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        if !self.ensure_ascii || fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
    fn write_char_escape<W: ?Sized + Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        // Python writes control characters as \u00XX too, in lower case, as serde_json does.
        serde_json::ser::CompactFormatter.write_char_escape(w, escape)
    }
}

fn sort(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.sort_keys();
            m.values_mut().for_each(sort);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(sort),
        _ => {}
    }
}

/// `json.dumps(value, ...)`.
pub fn dumps(value: &serde_json::Value, style: &Style) -> Result<String, serde_json::Error> {
    let mut value = value.clone();
    if style.sort_keys {
        sort(&mut value);
    }
    let indent = style.indent.map(|n| " ".repeat(n));
    let layout = match &indent {
        Some(i) => Layout::Pretty(PrettyFormatter::with_indent(i.as_bytes())),
        None => Layout::Line,
    };
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        PyFormatter {
            layout,
            ensure_ascii: style.ensure_ascii,
        },
    );
    serde::Serialize::serialize(&value, &mut ser)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_is_pythons() {
        let v = serde_json::json!({"b": [1, 2.5, null, true], "a": "é𝄞"});
        let line = Style {
            indent: None,
            ensure_ascii: true,
            sort_keys: false,
        };
        assert_eq!(
            dumps(&v, &line).unwrap(),
            r#"{"b": [1, 2.5, null, true], "a": "\u00e9\ud834\udd1e"}"#
        );
        let nice = Style {
            indent: Some(4),
            ensure_ascii: false,
            sort_keys: true,
        };
        assert_eq!(
            dumps(&v, &nice).unwrap(),
            "{\n    \"a\": \"é𝄞\",\n    \"b\": [\n        1,\n        2.5,\n        null,\n        true\n    ]\n}"
        );
    }
}
