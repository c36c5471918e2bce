//! A YAML tree that remembers where every key and value came from, typed as Ansible types it (YAML 1.1 scalars).
//!
//! serde_yaml reports no positions for values, so the spanned tree is built from yaml-rust2's
//! event parser. Plain scalars are typed the way PyYAML does it (`yes`/`no`/`on`/`off` are
//! booleans, `0644` is octal), so that an Ansible playbook means the same thing here. A tag
//! other than the standard ones (`!!str`, `!!int`, ...) is an error: roll gives no meaning to
//! `!vault`, `!unsafe` or `!!python/...`, and reading them as plain values would be wrong.

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
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
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
            Kind::Str(s) => Some(s.clone()),
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
            Kind::Seq(items) => Value::from(items.iter().map(Node::to_value).collect::<Vec<_>>()),
            Kind::Map(pairs) => Value::from_pairs(
                pairs
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_value())),
            ),
        }
    }
}

/// Parse one YAML document (an empty file is `Null`). Errors carry the position.
pub fn parse(sources: &Sources, file: FileId) -> Result<Node, Diagnostic> {
    let src = sources.get(file);
    let mut builder = Builder {
        file,
        src: &src,
        stack: Vec::new(),
        anchors: HashMap::new(),
        aliased: 0,
        docs: Vec::new(),
        error: None,
        too_deep: false,
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

struct Builder<'a> {
    file: FileId,
    src: &'a crate::source::SourceFile,
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
        // The parser places a node after its tag, maybe on a later line: find the tag before it.
        let shown = written(tag);
        let span = match self.src.text[..node_start].rfind(shown.as_str()) {
            Some(at) => Span::new(self.file, at, at + shown.len()),
            None => Span::new(self.file, node_start, node_start + 1),
        };
        self.error = Some(Diagnostic::at(message, span).with_help(help));
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
                let kind = match (tag.as_ref().and_then(core_name), style) {
                    (Some(name), _) => tagged_scalar(name, value),
                    (None, TScalarStyle::Plain) if tag.is_none() => plain_scalar(value),
                    (None, _) => Kind::Str(value),
                };
                self.push_node(Node { kind, span }, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_tag(tag.as_ref(), Shape::Seq, start);
                self.stack
                    .push(Frame::Seq(Vec::new(), Span::new(self.file, start, start + 1), anchor))
            }
            Event::MappingStart(anchor, tag) => {
                self.check_tag(tag.as_ref(), Shape::Map, start);
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
                    self.push_node(
                        Node {
                            kind: Kind::Seq(items),
                            span,
                        },
                        anchor,
                    );
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
                    self.push_node(
                        Node {
                            kind: Kind::Map(pairs),
                            span,
                        },
                        anchor,
                    );
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
        None if shown == "!vault" => Some((
            format!("unsupported YAML tag `{shown}`"),
            "roll does not read Ansible vault values yet; read the secret from the controller's environment with `lookup('env', 'NAME')`, which roll masks in every output".to_string(),
        )),
        None if shown == "!unsafe" => Some((
            format!("unsupported YAML tag `{shown}`"),
            "roll does not read Ansible vault values or `!unsafe` yet; write the value without the tag, inside `{% raw %}...{% endraw %}` if it must not be templated".to_string(),
        )),
        None => Some((
            format!("unknown YAML tag `{shown}`"),
            "roll reads only the standard tags `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq` and `!!map`; remove the tag".to_string(),
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
                "x: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n",
                "unsupported YAML tag `!vault`",
                "t.yml:1:4",
            ),
            ("x: !unsafe '{{ y }}'\n", "unsupported YAML tag `!unsafe`", "t.yml:1:4"),
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
