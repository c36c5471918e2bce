//! `--format json`: one JSON object per event on stdout (JSON Lines), with a schema version.

use crate::exec::Reporter;
use crate::exec::events::Event;
use std::io::Write;

/// Bumped whenever an event's fields change incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub struct JsonLines<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }
}

impl<W: Write + Send> Reporter for JsonLines<W> {
    fn event(&mut self, e: &Event) {
        let mut v = serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("v".into(), SCHEMA_VERSION.into());
        }
        let _ = writeln!(self.out, "{v}");
        let _ = self.out.flush();
    }
}
