//! User-facing errors: a message, an optional span rendered as file:line:col with a caret, and a help line.

use crate::source::{LoadError, Sources, Span};
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::fmt::Write as _;

/// How many diagnostics of one run are shown before the rest are summarised.
pub const MAX_DIAGNOSTICS: usize = 50;

/// One problem found in the user's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Option<Span>,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: None,
            label: None,
            help: None,
        }
    }

    pub fn at(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::error(message).with_span(span)
    }

    pub fn with_span(mut self, span: Span) -> Diagnostic {
        self.span = Some(span);
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// An input file that could not be read: `cannot read {what} `{path}`: {why}`, at the NUL
    /// byte when there is one, with help when roll refused it.
    pub fn unreadable(what: &str, path: &std::path::Path, e: &LoadError) -> Diagnostic {
        let shown = crate::source::display_path(path);
        let d = Diagnostic::error(format!("cannot read {what} `{}`: {e}", shown.display()));
        match e {
            LoadError::Io(_) => d,
            LoadError::NotAFile(_) => {
                d.with_help("roll reads playbooks, inventories and variables from regular files, not from devices, pipes or directories")
            }
            LoadError::TooLarge => d.with_help(format!(
                "roll reads files of up to {} MiB; check that this is the file you meant",
                crate::source::MAX_FILE_BYTES >> 20
            )),
            LoadError::Nul(span) => d.with_span(*span).with_label("NUL byte").with_help(
                "roll reads UTF-8 text; a NUL byte means a binary file, or text saved as UTF-16 (save it as UTF-8)",
            ),
            LoadError::Vault(e) => d.with_help(crate::vault::help(e)),
        }
    }

    /// Help suggesting the closest of `candidates` to `got`, if one is close enough.
    pub fn suggest<'a>(self, got: &str, candidates: impl IntoIterator<Item = &'a str>) -> Diagnostic {
        match closest(got, candidates) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    /// Render in the rustc style: message, `--> file:line:col`, the line with a caret, help.
    pub fn render(&self, sources: &Sources, color: bool) -> String {
        if self.span.is_none() {
            let mut out = if color {
                format!("\x1b[1;31merror\x1b[0m\x1b[1m: {}\x1b[0m", self.message)
            } else {
                format!("error: {}", self.message)
            };
            if let Some(help) = &self.help {
                out.push_str(&format!("\n  = help: {help}"));
            }
            return out;
        }
        if let Some(span) = self.span
            && (sources.get(span.file).private || sources.get(span.file).vaulted)
        {
            return self.render_private(sources, span, color);
        }
        let renderer = if color { Renderer::styled() } else { Renderer::plain() };
        let mut group = Group::with_title(Level::ERROR.primary_title(self.message.as_str()));
        // Only the lines around the span are handed to the renderer, which keeps rendering cheap
        // for large files and lets the line numbers stay those of the file.
        let file;
        if let Some(span) = self.span {
            file = sources.get(span.file);
            // A span may start or end inside a multi-byte character (one byte past the start, or
            // a parser's position in malformed input): widen it to whole characters.
            let span_start = file.text.floor_char_boundary(span.start as usize);
            let (line, _) = file.line_col(span_start);
            let line_start = file.offset_of(line, 1);
            let line_end = file.line_end(span_start);
            let end = (span.end as usize).max(span_start + 1).min(line_end.max(span_start));
            let text = &file.text[line_start..line_end];
            let mut start = span_start - line_start;
            let mut stop = end.saturating_sub(line_start).max(start);
            if start >= text.len() {
                start = text.len();
                stop = text.len();
            }
            let stop = text.ceil_char_boundary(stop);
            let path = file.path.display().to_string();
            let mut annotation = AnnotationKind::Primary.span(start..stop.max(start));
            if let Some(label) = &self.label {
                annotation = annotation.label(label.as_str());
            }
            group = group.element(
                Snippet::source(text.to_string())
                    .line_start(line)
                    .path(path)
                    .annotation(annotation),
            );
        }
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        renderer.render(&[group])
    }
}

impl Diagnostic {
    /// A diagnostic in a file outside the project (`vars_files: [/etc/shadow]`): its place, but
    /// none of its text, neither the line nor a quoted piece of it in the message.
    fn render_private(&self, sources: &Sources, span: crate::source::Span, color: bool) -> String {
        let file = sources.get(span.file);
        let mut message = String::new();
        let mut parts = self.message.split('`');
        if let Some(first) = parts.next() {
            message.push_str(first);
        }
        for (i, part) in parts.enumerate() {
            message.push('`');
            // Inside backticks (every other piece): hidden when it is text of the file.
            let hidden = i % 2 == 0 && part.trim().len() >= 3 && file.text.contains(part.trim());
            message.push_str(if hidden { "…" } else { part });
        }
        let mut out = if color {
            format!("\x1b[1;31merror\x1b[0m\x1b[1m: {message}\x1b[0m")
        } else {
            format!("error: {message}")
        };
        out.push_str(&format!("\n --> {}", sources.location(span)));
        out.push_str(if file.vaulted {
            "\n  = note: the file is vault-encrypted, so its text is not shown"
        } else {
            "\n  = note: the file is outside the project, so its text is not shown"
        });
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  = help: {help}"));
        }
        out
    }
}

/// The candidate closest to `got`, if it is plausibly a typo of it: a small edit distance
/// (transpositions count once) or a very similar spelling.
pub fn closest<'a>(got: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let n = got.chars().count();
    let limit = (n / 3).max(1);
    let mut best: Option<(usize, f64, &str)> = None;
    // A suggestion is a courtesy: bound its work (an inventory may name 100,000 long hosts).
    let mut budget: usize = 50_000_000;
    for c in candidates {
        if c == got {
            continue;
        }
        // Neither test can pass when one is over four times as long as the other: the edit
        // distance is at least the difference, and Jaro-Winkler stays under 0.9 (Jaro < 0.75).
        let m = c.chars().count();
        if m > 4 * n.max(1) || n > 4 * m.max(1) {
            continue;
        }
        let cost = n.max(1) * m.max(1);
        if cost > budget {
            break;
        }
        budget -= cost;
        let dist = strsim::damerau_levenshtein(got, c);
        let sim = strsim::jaro_winkler(got, c);
        if dist > limit && sim < 0.9 {
            continue;
        }
        if best.is_none_or(|(d, s, _)| dist < d || (dist == d && sim > s)) {
            best = Some((dist, sim, c));
        }
    }
    best.map(|(_, _, c)| c)
}

/// A list of diagnostics collected while checking one run's input.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Render all (up to the cap), followed by a summary line.
    pub fn render(&self, sources: &Sources, color: bool) -> String {
        let mut out = String::new();
        for d in self.items.iter().take(MAX_DIAGNOSTICS) {
            // A message can quote a decrypted vault value (`invalid port `...``).
            out.push_str(&sources.secrets().mask(&d.render(sources, color)));
            out.push_str("\n\n");
        }
        if self.items.len() > MAX_DIAGNOSTICS {
            let _ = writeln!(
                out,
                "... and {} more errors not shown\n",
                self.items.len() - MAX_DIAGNOSTICS
            );
        }
        let n = self.items.len();
        let _ = writeln!(
            out,
            "error: aborting due to {} previous error{}; nothing was run",
            if n == 1 { "a".to_string() } else { n.to_string() },
            if n == 1 { "" } else { "s" }
        );
        out
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics { items: vec![d] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let sources = Sources::new();
        let f = sources.add("play.yml", "- hosts: all\n  seral: 2\n".to_string());
        let d =
            Diagnostic::at("unknown key `seral` in play", Span::new(f, 15, 20)).suggest("seral", ["serial", "hosts"]);
        let text = d.render(&sources, false);
        assert_eq!(
            text,
            "error: unknown key `seral` in play\n --> play.yml:2:3\n  |\n2 |   seral: 2\n  |   ^^^^^\n  |\n  = help: did you mean `serial`?"
        );
    }

    #[test]
    fn a_span_inside_a_multibyte_character_widens_to_it() {
        // Found by the playbook fuzz target: a one-byte span on `ƀ` (two bytes) panicked.
        let sources = Sources::new();
        let f = sources.add("play.yml", "x: ƀ:\n".to_string());
        for (start, end) in [(3, 4), (4, 5), (4, 4)] {
            let text = Diagnostic::at("bad", Span::new(f, start, end)).render(&sources, false);
            assert!(text.contains("1 | x: ƀ:"), "{text}");
            assert!(text.contains('^'), "no caret in {text}");
        }
    }
}
