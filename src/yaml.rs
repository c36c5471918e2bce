//! A YAML tree that remembers where every key and value came from, typed as Ansible types it (YAML 1.1 scalars).
//!
//! serde_yaml reports no positions for values, so the spanned tree is built from yaml-rust2's
//! event parser. Plain scalars are typed the way PyYAML does it (`yes`/`no`/`on`/`off` are
//! booleans, `0644` is octal), so that an Ansible playbook means the same thing here. Besides
//! the standard tags (`!!str`, `!!int`, ...) roll reads Ansible's two: `!vault` (decrypted here
//! with the run's vault passwords, and a secret from then on) and `!unsafe` (text that is never
//! rendered as a template). Any other tag (`!!python/...`) is an error: reading it as a plain
//! value would be wrong.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};
use minijinja::Value;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `!unsafe` text: never rendered as a template, wherever it goes.
    Unsafe(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) | Kind::Unsafe(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) | Kind::Unsafe(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// The scalar as text, the way Ansible would stringify it in a command line or a name.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Null => Some(String::new()),
            Kind::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Str(s) | Kind::Unsafe(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Look up a key in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Convert to a template value (strings stay untemplated; rendering is lazy).
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::from(()),
            Kind::Bool(b) => Value::from(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => Value::from(*f),
            Kind::Str(s) => Value::from(s.as_str()),
            Kind::Unsafe(s) => unsafe_text(s),
            Kind::Seq(items) => Value::from(items.iter().map(Node::to_value).collect::<Vec<_>>()),
            Kind::Map(pairs) => Value::from_pairs(
                pairs
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_value())),
            ),
        }
    }
}

/// `!unsafe` text as a template value. minijinja's "safe" string flag, which only HTML
/// auto-escaping reads (roll renders with none), carries the mark: the templar never renders
/// a string that has it (see `vars::contains_template`).
pub fn unsafe_text(s: &str) -> Value {
    Value::from_safe_string(s.to_string())
}

/// Whether a template value is text that must never be rendered (`!unsafe`, or data that came
/// from a host).
pub fn is_unsafe_text(v: &Value) -> bool {
    v.is_safe()
}

/// Parse one YAML document (an empty file is `Null`). Errors carry the position. `!vault`
/// values are decrypted with the run's vault passwords (`Sources::vault`); what they and a
/// vault-encrypted file hold is added to the run's secrets.
pub fn parse(sources: &Sources, file: FileId) -> Result<Node, Diagnostic> {
    let src = sources.get(file);
    let mut builder = Builder {
        file,
        src: &src,
        keyring: None,
        sources,
        stack: Vec::new(),
        anchors: HashMap::new(),
        aliased: 0,
        docs: Vec::new(),
        error: None,
        too_deep: false,
        unsafe_frames: Vec::new(),
    };
    let mut parser = Parser::new_from_str(&src.text);
    // Events one at a time, not `Parser::load`: that recurses once per level of nesting and
    // overflows the stack on a deep enough file before the builder can refuse it.
    let loaded = loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break Ok(()),
            Ok((ev, mark)) => {
                builder.on_event(ev, mark);
                if builder.too_deep {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    if let Err(e) = loaded {
        let m = e.marker();
        let mut off = src.offset_of(m.line(), m.col() + 1);
        // The scanner marks where the token it was reading began (a plain scalar on the line
        // before, say): point at the tab itself, the next one from there.
        if e.info().contains("found a tab")
            && let Some(tab) = src.text.get(off..).and_then(|t| t.find('\t'))
        {
            off += tab;
        }
        if e.info() == "recursion limit exceeded" {
            // The scanner counts flow nesting (`[[[`, `{{{`) in a byte.
            return Err(Diagnostic::at(
                "YAML nested too deeply (more than 255 levels of `[` and `{`)",
                Span::new(file, off, off + 1),
            )
            .with_help("no playbook, inventory or variables file nests this deep; was it generated by mistake?"));
        }
        return Err(Diagnostic::at(
            format!("invalid YAML: {}", clean_scan_error(e.info())),
            Span::new(file, off, off + 1),
        )
        .with_help("check the indentation and quoting on this line or the one before it"));
    }
    if let Some(d) = builder.error {
        return Err(d);
    }
    let mut docs = builder.docs;
    if src.vaulted {
        docs.iter().for_each(|d| add_secrets(sources, d));
    }
    match docs.len() {
        0 => Ok(Node {
            kind: Kind::Null,
            span: Span::new(file, 0, 0),
        }),
        1 => Ok(docs.remove(0)),
        _ => Err(Diagnostic::at("a file may hold only one YAML document", docs[1].span)
            .with_help("remove the second `---` or split the file")),
    }
}

fn clean_scan_error(info: &str) -> String {
    info.trim_start_matches("while parsing ").to_string()
}

enum Frame {
    Seq(Vec<Node>, Span, usize),
    /// pairs, the pending key, pairs merged in by `<<` (explicit keys win), span, anchor
    Map(Vec<(Node, Node)>, Option<Node>, Vec<(Node, Node)>, Span, usize),
}

fn mark_unsafe(n: &mut Node) {
    match &mut n.kind {
        Kind::Str(s) => n.kind = Kind::Unsafe(std::mem::take(s)),
        Kind::Seq(items) => items.iter_mut().for_each(mark_unsafe),
        Kind::Map(pairs) => pairs.iter_mut().for_each(|(_, v)| mark_unsafe(v)),
        _ => {}
    }
}

/// Every value (not key) of a tree read from a vault-encrypted file is a secret.
fn add_secrets(sources: &Sources, n: &Node) {
    match &n.kind {
        Kind::Seq(items) => items.iter().for_each(|i| add_secrets(sources, i)),
        Kind::Map(pairs) => pairs.iter().for_each(|(_, v)| add_secrets(sources, v)),
        _ => {
            if let Some(t) = n.scalar_text() {
                sources.secrets().add(&t);
            }
        }
    }
}

struct Builder<'a> {
    file: FileId,
    src: &'a crate::source::SourceFile,
    /// The run's vault passwords, fetched at the first `!vault` value.
    keyring: Option<crate::vault::Keyring>,
    sources: &'a Sources,
    stack: Vec<Frame>,
    /// Anchored nodes, with how many nodes each holds.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes copied by aliases so far: bounded, so that aliases of aliases (a "billion laughs"
    /// document) end in a diagnostic instead of exhausting memory.
    aliased: usize,
    docs: Vec<Node>,
    error: Option<Diagnostic>,
    /// Set once nesting went past [`MAX_DEPTH`]: the rest of the document is not built.
    too_deep: bool,
    /// The depths of the open lists and mappings tagged `!unsafe`.
    unsafe_frames: Vec<usize>,
}

impl Builder<'_> {
    fn offset(&self, m: &Marker) -> usize {
        self.src.offset_of(m.line(), m.col() + 1)
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), node_count(&node)));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map(pairs, pending, merged_pairs, _, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if key.as_str() == Some("<<") {
                        // YAML merge key: splice the aliased mapping(s) in, explicit keys win.
                        let merged: Vec<Node> = match node.kind {
                            Kind::Seq(items) => items,
                            _ => vec![node],
                        };
                        for m in merged {
                            if let Kind::Map(src_pairs) = m.kind {
                                merged_pairs.extend(src_pairs);
                            }
                        }
                        return;
                    }
                    if let Some((first, _)) = pairs.iter().find(|(k, _)| k.kind == key.kind) {
                        if self.error.is_none() {
                            let first_loc = {
                                let (l, c) = self.src.line_col(first.span.start as usize);
                                format!("{l}:{c}")
                            };
                            self.error = Some(
                                Diagnostic::at(
                                    format!("duplicate key `{}`", key.scalar_text().unwrap_or_default()),
                                    key.span,
                                )
                                .with_help(format!(
                                    "the key is already set at line {first_loc}; remove one of them"
                                )),
                            );
                        }
                        return;
                    }
                    pairs.push((key, node));
                }
            },
        }
    }
}

impl Builder<'_> {
    /// Refuse a tag roll gives no meaning to (the first one, like the other errors here): an
    /// Ansible `!vault` value read as its ciphertext, or `!unsafe` text rendered as a template,
    /// would silently be something else than the author meant.
    fn check_tag(&mut self, tag: Option<&Tag>, shape: Shape, node_start: usize) {
        let Some(tag) = tag else { return };
        if self.error.is_some() {
            return;
        }
        let Some((message, help)) = tag_problem(tag, shape) else {
            return;
        };
        let span = self.tag_span(Some(tag), node_start);
        self.error = Some(Diagnostic::at(message, span).with_help(help));
    }
}

impl Builder<'_> {
    /// The plaintext of a `!vault` value, a secret of the run from now on. A value that cannot
    /// be decrypted is invalid input, at its tag: nothing may run with a ciphertext in place of
    /// the value.
    fn vault_value(&mut self, text: &str, tag: Option<&Tag>, node_start: usize) -> Kind {
        let keyring = self.keyring.get_or_insert_with(|| self.sources.vault());
        match keyring.decrypt(text) {
            Ok(plain) => {
                self.sources.secrets().add(&plain);
                Kind::Str(plain)
            }
            Err(e) => {
                if self.error.is_none() {
                    let span = self.tag_span(tag, node_start);
                    self.error = Some(
                        Diagnostic::at(format!("cannot decrypt this `!vault` value: {e}"), span)
                            .with_help(crate::vault::help(&e)),
                    );
                }
                Kind::Null
            }
        }
    }

    /// A list or mapping just closed that was tagged `!unsafe`: every string value in it is.
    fn unsafe_if_tagged(&mut self, node: &mut Node) {
        if self.unsafe_frames.last() == Some(&self.stack.len()) {
            self.unsafe_frames.pop();
            mark_unsafe(node);
        }
    }

    /// Where a node's tag is written: the parser places the node after it, maybe on a later line.
    fn tag_span(&self, tag: Option<&Tag>, node_start: usize) -> Span {
        let Some(tag) = tag else {
            return Span::new(self.file, node_start, node_start + 1);
        };
        let shown = written(tag);
        match self.src.text[..node_start.min(self.src.text.len())].rfind(shown.as_str()) {
            Some(at) => Span::new(self.file, at, at + shown.len()),
            None => Span::new(self.file, node_start, node_start + 1),
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.too_deep {
            return;
        }
        let start = self.offset(&mark);
        if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..)) && self.stack.len() >= MAX_DEPTH {
            self.too_deep = true;
            // Reported over any earlier error: the tree is cut off here.
            self.error = Some(
                Diagnostic::at(
                    format!("YAML nested too deeply (more than {MAX_DEPTH} levels)"),
                    Span::new(self.file, start, start + 1),
                )
                .with_help("no playbook, inventory or variables file nests this deep; was it generated by mistake?"),
            );
            return;
        }
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let width = match style {
                    TScalarStyle::Plain => value.chars().count().max(1),
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => value.chars().count() + 2,
                    _ => 1,
                };
                let line_end = self.src.line_end(start);
                let end = self.src.text[start..line_end]
                    .char_indices()
                    .nth(width)
                    .map_or(line_end, |(i, _)| start + i);
                let span = Span::new(self.file, start, end);
                self.check_tag(tag.as_ref(), Shape::Scalar, start);
                let ansible = tag.as_ref().and_then(ansible_tag);
                let kind = match (tag.as_ref().and_then(core_name), style) {
                    _ if ansible == Some("vault") => self.vault_value(&value, tag.as_ref(), start),
                    _ if ansible == Some("unsafe") => Kind::Unsafe(value),
                    (Some(name), _) => tagged_scalar(name, value),
                    (None, TScalarStyle::Plain) if tag.is_none() => plain_scalar(value),
                    (None, _) => Kind::Str(value),
                };
                self.push_node(Node { kind, span }, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_tag(tag.as_ref(), Shape::Seq, start);
                if tag.as_ref().and_then(ansible_tag) == Some("unsafe") {
                    self.unsafe_frames.push(self.stack.len());
                }
                self.stack
                    .push(Frame::Seq(Vec::new(), Span::new(self.file, start, start + 1), anchor))
            }
            Event::MappingStart(anchor, tag) => {
                self.check_tag(tag.as_ref(), Shape::Map, start);
                if tag.as_ref().and_then(ansible_tag) == Some("unsafe") {
                    self.unsafe_frames.push(self.stack.len());
                }
                self.stack.push(Frame::Map(
                    Vec::new(),
                    None,
                    Vec::new(),
                    Span::new(self.file, start, start + 1),
                    anchor,
                ))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, span, anchor)) = self.stack.pop() {
                    let mut node = Node {
                        kind: Kind::Seq(items),
                        span,
                    };
                    self.unsafe_if_tagged(&mut node);
                    self.push_node(node, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut pairs, _, merged, mut span, anchor)) = self.stack.pop() {
                    // A block mapping's event starts after its first key; point at that key.
                    if let Some((k, _)) = pairs.first() {
                        span = Span::new(self.file, k.span.start.min(span.start) as usize, k.span.end as usize);
                    }
                    for (k, v) in merged {
                        if !pairs.iter().any(|(pk, _)| pk.kind == k.kind) {
                            pairs.push((k, v));
                        }
                    }
                    let mut node = Node {
                        kind: Kind::Map(pairs),
                        span,
                    };
                    self.unsafe_if_tagged(&mut node);
                    self.push_node(node, anchor);
                }
            }
            Event::Alias(id) => {
                let null = Node {
                    kind: Kind::Null,
                    span: Span::new(self.file, start, start + 1),
                };
                let node = match self.anchors.get(&id) {
                    Some((node, size)) if self.aliased + size <= MAX_ALIASED_NODES => {
                        self.aliased += size;
                        node.clone()
                    }
                    Some(_) => {
                        if self.error.is_none() {
                            self.error = Some(
                                Diagnostic::at(
                                    format!("the aliases in this file expand to more than {MAX_ALIASED_NODES} values"),
                                    null.span,
                                )
                                .with_label("this alias goes over the limit")
                                .with_help("aliases of aliases grow exponentially; repeat the values or use fewer levels of aliases"),
                            );
                        }
                        null
                    }
                    None => null,
                };
                self.push_node(node, 0);
            }
            _ => {}
        }
    }
}

/// Lists and mappings nested deeper than any real file (playbooks reach about 20): every
/// stage walks the tree recursively, and the run's stack is sized for this depth.
pub const MAX_DEPTH: usize = 1_000;

/// More values than any playbook or inventory copies through aliases, far fewer than it takes
/// to exhaust memory.
const MAX_ALIASED_NODES: usize = 100_000;

fn node_count(n: &Node) -> usize {
    1 + match &n.kind {
        Kind::Seq(items) => items.iter().map(node_count).sum(),
        Kind::Map(pairs) => pairs.iter().map(|(k, v)| node_count(k) + node_count(v)).sum(),
        _ => 0,
    }
}

/// The standard tags' prefix: `!!str` is `tag:yaml.org,2002:str`.
const CORE_TAGS: &str = "tag:yaml.org,2002:";

/// What a tag may be put on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Scalar,
    Seq,
    Map,
}

/// The name of a standard tag (`str` for `!!str` or `!<tag:yaml.org,2002:str>`).
fn core_name(tag: &Tag) -> Option<&str> {
    if tag.handle == CORE_TAGS {
        return Some(&tag.suffix);
    }
    tag.suffix.strip_prefix(CORE_TAGS).filter(|_| tag.handle.is_empty())
}

/// Ansible's own tags, `!vault` and `!unsafe` (written with the local handle `!`).
fn ansible_tag(tag: &Tag) -> Option<&'static str> {
    match (tag.handle.as_str(), tag.suffix.as_str()) {
        ("!", "vault") => Some("vault"),
        ("!", "unsafe") => Some("unsafe"),
        _ => None,
    }
}

/// A tag as it is written in the file, for messages and to find it there.
fn written(tag: &Tag) -> String {
    match (tag.handle.as_str(), core_name(tag)) {
        (_, Some(name)) if tag.handle == CORE_TAGS => format!("!!{name}"),
        ("!", _) => format!("!{}", tag.suffix),
        ("", _) if tag.suffix == "!" => "!".to_string(),
        (handle, _) => format!("!<{handle}{}>", tag.suffix),
    }
}

/// Why roll refuses a tag on a node of this shape (message, help), if it does. The standard
/// tags of the node's own kind and the non-specific `!` are read; nothing else has a meaning
/// here.
fn tag_problem(tag: &Tag, shape: Shape) -> Option<(String, String)> {
    let shown = written(tag);
    let fits = match core_name(tag) {
        Some("str" | "int" | "float" | "bool" | "null") => Some(shape == Shape::Scalar),
        Some("seq") => Some(shape == Shape::Seq),
        Some("map") => Some(shape == Shape::Map),
        _ if tag.handle.is_empty() && tag.suffix == "!" => Some(true),
        _ => None,
    };
    match fits {
        Some(true) => None,
        Some(false) => Some((
            format!(
                "the YAML tag `{shown}` does not apply to {}",
                match shape {
                    Shape::Scalar => "a scalar",
                    Shape::Seq => "a list",
                    Shape::Map => "a mapping",
                }
            ),
            "remove the tag".to_string(),
        )),
        // `!unsafe` on a list or mapping marks every string inside, as in Ansible 2.19.
        _ if ansible_tag(tag) == Some("unsafe") => None,
        _ if ansible_tag(tag).is_some() && shape == Shape::Scalar => None,
        _ if ansible_tag(tag).is_some() => Some((
            format!(
                "the YAML tag `{shown}` applies to a string, not to {}",
                if shape == Shape::Seq { "a list" } else { "a mapping" }
            ),
            "put the tag on each string inside".to_string(),
        )),
        None => Some((
            format!("unknown YAML tag `{shown}`"),
            "roll reads the standard tags `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map`, and Ansible's `!vault` and `!unsafe`; remove the tag".to_string(),
        )),
    }
}

/// A scalar with a standard tag (`name` is `str`, `int`, ...; `tag_problem` refused the rest).
fn tagged_scalar(name: &str, value: String) -> Kind {
    match name {
        "int" => value.parse().map(Kind::Int).unwrap_or(Kind::Str(value)),
        "float" => value.parse().map(Kind::Float).unwrap_or(Kind::Str(value)),
        "bool" => plain_scalar(value),
        "null" => Kind::Null,
        _ => Kind::Str(value),
    }
}

/// Type a plain (unquoted) scalar as PyYAML's YAML 1.1 resolver does.
pub fn plain_scalar(v: String) -> Kind {
    match v.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Kind::Bool(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Kind::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(&v) {
        return Kind::Int(i);
    }
    let looks_float = v.bytes().any(|b| b == b'.')
        && v.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E' | b'_'))
        && v.bytes().any(|b| b.is_ascii_digit());
    if looks_float && let Ok(f) = v.replace('_', "").parse::<f64>() {
        return Kind::Float(f);
    }
    Kind::Str(v)
}

fn parse_int(v: &str) -> Option<i64> {
    let (neg, digits) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    let clean = digits.replace('_', "");
    let n = if let Some(hex) = clean.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = clean.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if let Some(bin) = clean.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if clean.len() > 1 && clean.starts_with('0') {
        i64::from_str_radix(&clean[1..], 8).ok()?
    } else if clean.bytes().all(|b| b.is_ascii_digit()) {
        clean.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> (Sources, Result<Node, Diagnostic>) {
        let s = Sources::new();
        let f = s.add("t.yml", text.to_string());
        let r = parse(&s, f);
        (s, r)
    }

    #[test]
    fn types_scalars_like_pyyaml() {
        let (_, n) = p("a: yes\nb: 0644\nc: '0644'\nd: 1.5\ne: ~\nf: 0x1F\ng: hello\n");
        let n = n.unwrap();
        assert_eq!(n.get("a").unwrap().kind, Kind::Bool(true));
        assert_eq!(n.get("b").unwrap().kind, Kind::Int(0o644));
        assert_eq!(n.get("c").unwrap().kind, Kind::Str("0644".into()));
        assert_eq!(n.get("d").unwrap().kind, Kind::Float(1.5));
        assert_eq!(n.get("e").unwrap().kind, Kind::Null);
        assert_eq!(n.get("f").unwrap().kind, Kind::Int(31));
        assert_eq!(n.get("g").unwrap().kind, Kind::Str("hello".into()));
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let (s, n) = p("- name: x\n  hosts: \"web\"\n");
        let n = n.unwrap();
        let play = &n.as_seq().unwrap()[0];
        let (k, v) = &play.as_map().unwrap()[1];
        assert_eq!(s.location(k.span), "t.yml:2:3");
        assert_eq!(s.location(v.span), "t.yml:2:10");
        assert_eq!(v.span.end - v.span.start, 5);
    }

    #[test]
    fn anchors_and_merge_keys_resolve() {
        let (_, n) = p("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n");
        let n = n.unwrap();
        let other = n.get("other").unwrap();
        assert_eq!(other.get("x").unwrap().kind, Kind::Int(1));
        assert_eq!(other.get("y").unwrap().kind, Kind::Int(3));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let (s, n) = p("a: 1\na: 2\n");
        let d = n.unwrap_err();
        assert_eq!(d.message, "duplicate key `a`");
        assert_eq!(s.location(d.span.unwrap()), "t.yml:2:1");
    }

    #[test]
    fn standard_tags_are_read() {
        let (_, n) =
            p("a: !!str 5\nb: !!int '7'\nc: ! 8\nd: !<tag:yaml.org,2002:str> 9\ne: !!seq [1]\nf: !!map {x: 1}\n");
        let n = n.unwrap();
        assert_eq!(n.get("a").unwrap().kind, Kind::Str("5".into()));
        assert_eq!(n.get("b").unwrap().kind, Kind::Int(7));
        assert_eq!(n.get("c").unwrap().kind, Kind::Str("8".into()));
        assert_eq!(n.get("d").unwrap().kind, Kind::Str("9".into()));
        assert!(n.get("e").unwrap().as_seq().is_some());
        assert!(n.get("f").unwrap().as_map().is_some());
    }

    #[test]
    fn other_tags_are_errors_at_the_tag() {
        for (text, message, at) in [
            (
                "x: !vault [a]\n",
                "the YAML tag `!vault` applies to a string, not to a list",
                "t.yml:1:4",
            ),
            (
                "- !!python/object/apply:os.system [id]\n",
                "unknown YAML tag `!!python/object/apply:os.system`",
                "t.yml:1:3",
            ),
            ("a: 1\nx: !foo\n  y: 1\n", "unknown YAML tag `!foo`", "t.yml:2:4"),
            ("x: !int 5\n", "unknown YAML tag `!int`", "t.yml:1:4"),
            (
                "x: !!seq 5\n",
                "the YAML tag `!!seq` does not apply to a scalar",
                "t.yml:1:4",
            ),
        ] {
            let (s, n) = p(text);
            let d = n.unwrap_err();
            assert_eq!(d.message, message, "{text}");
            assert_eq!(s.location(d.span.unwrap()), at, "{text}");
            assert!(d.help.is_some(), "{text}");
        }
    }

    #[test]
    fn unsafe_text_is_kept_as_text_that_is_never_a_template() {
        let (_, n) = p(
            "x: !unsafe '{{ y }}'\ny: !unsafe plain {% raw %}\nz: !unsafe ['{{ a }}', {b: '{{ c }}'}]\nw: ['{{ d }}']\n",
        );
        let n = n.unwrap();
        let z = n.get("z").unwrap().as_seq().unwrap();
        assert_eq!(z[0].kind, Kind::Unsafe("{{ a }}".into()));
        assert_eq!(z[1].get("b").unwrap().kind, Kind::Unsafe("{{ c }}".into()));
        assert_eq!(
            n.get("w").unwrap().as_seq().unwrap()[0].kind,
            Kind::Str("{{ d }}".into())
        );
        assert_eq!(n.get("x").unwrap().kind, Kind::Unsafe("{{ y }}".into()));
        let v = n.get("y").unwrap().to_value();
        assert!(is_unsafe_text(&v));
        assert_eq!(v.as_str(), Some("plain {% raw %}"));
        assert!(!is_unsafe_text(&Value::from("x")));
    }

    #[test]
    fn vault_values_are_decrypted_into_secrets_or_refused_at_their_tag() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vault/inline.yml");
        let text = std::fs::read_to_string(fixture).unwrap();
        // Without a password: invalid input at the first `!vault`, with what to do.
        let (s, n) = p(&text);
        let d = n.unwrap_err();
        assert_eq!(
            d.message,
            "cannot decrypt this `!vault` value: no vault password was given to decrypt it"
        );
        assert_eq!(s.location(d.span.unwrap()), "t.yml:2:16");
        assert!(d.help.unwrap().contains("--vault-password-file"));
        // With both passwords: each value decrypted, and every one of them a secret.
        let s = Sources::new();
        s.set_vault(crate::vault::Keyring::new(vec![
            crate::vault::Password::new("default", "vault-pass-Yh3k"),
            crate::vault::Password::new("prod", "prod-pass-Qm8w"),
        ]));
        let f = s.add("t.yml", text.clone());
        let n = parse(&s, f).unwrap();
        assert_eq!(n.get("inline_secret").unwrap().as_str(), Some("inline-secret-K2p9"));
        assert_eq!(n.get("prod_secret").unwrap().as_str(), Some("prod-inline-Z5t1"));
        assert_eq!(
            n.get("multi_line").unwrap().as_str(),
            Some("line-one-abc\nline-two-def")
        );
        assert_eq!(n.get("plain_value").unwrap().as_str(), Some("visible"));
        for shown in ["inline-secret-K2p9", "prod-inline-Z5t1", "line-two-def"] {
            assert!(s.secrets().reveals(&format!("x {shown} y")), "{shown}");
        }
        assert!(!s.secrets().reveals("visible"));
        // Only the default password: the `prod` value names its vault id.
        let s = Sources::new();
        s.set_vault(crate::vault::Keyring::new(vec![crate::vault::Password::new(
            "default",
            "vault-pass-Yh3k",
        )]));
        let f = s.add("t.yml", text);
        let d = parse(&s, f).unwrap_err();
        assert_eq!(
            d.message,
            "cannot decrypt this `!vault` value: the vault password given does not decrypt it (it was encrypted with the vault id `prod`)"
        );
        assert_eq!(s.location(d.span.unwrap()), "t.yml:9:14");
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_at_its_place() {
        let deep = format!("x:\n  {}1\n", "- ".repeat(100_000));
        let (sources, r) = p(&deep);
        let d = r.unwrap_err();
        assert!(d.message.contains("YAML nested too deeply"), "{}", d.message);
        let span = d.span.unwrap();
        let (line, col) = sources.get(span.file).line_col(span.start as usize);
        assert_eq!((line, col), (2, 3 + 2 * MAX_DEPTH - 2));
        let fine = format!("x:\n  {}1\n", "- ".repeat(MAX_DEPTH - 1));
        assert!(p(&fine).1.is_ok());
    }

    #[test]
    fn a_tab_is_reported_where_it_is_not_where_the_scalar_before_it_began() {
        let (s, n) = p("a: 1\n\tb: 2\n");
        let d = n.unwrap_err();
        assert!(d.message.contains("found a tab"), "{}", d.message);
        assert_eq!(s.location(d.span.unwrap()), "t.yml:2:1");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (s, n) = p("a: [1, 2\nb: 3\n");
        let d = n.unwrap_err();
        assert!(d.message.starts_with("invalid YAML"), "{}", d.message);
        assert!(s.location(d.span.unwrap()).starts_with("t.yml:"));
    }
}
