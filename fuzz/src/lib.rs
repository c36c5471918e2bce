//! The fuzz targets' bodies: each takes arbitrary bytes and drives one of roll's parsers or the
//! template engine the way a run would. The libFuzzer targets in `fuzz_targets/` call them, and
//! `tests/regressions.rs` replays every input a fuzzer ever found a problem with.

use minijinja::Value;
use roll::source::Sources;
use roll::values::from_serde;
use roll::vars::Templar;
use std::path::Path;
use std::sync::OnceLock;

/// The playbook parser (YAML tree with spans, plays, tasks, module arguments) and the rendering
/// of its diagnostics.
pub fn playbook(data: &[u8]) {
    // roll reads playbooks with read_to_string: text that is not UTF-8 never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sources = Sources::new();
    // A directory that does not exist: `vars_files` and templates named by the input resolve
    // to nothing instead of to this machine's files.
    let path = Path::new("/nonexistent/roll-fuzz/playbook.yml");
    let file = sources.add(path, text.to_owned());
    match roll::playbook::parse(&sources, file, path) {
        Ok(pb) => {
            for play in &pb.plays {
                for (_, tasks) in play.sections() {
                    for t in tasks {
                        t.walk(&mut |t| {
                            let _ = t.display_name();
                        });
                    }
                }
            }
        }
        Err(diags) => {
            let _ = diags.render(&sources, true);
        }
    }
}

/// The INI (`hosts`) or YAML (`hosts.yml`) inventory parser, its diagnostics, and host patterns
/// resolved against what it parsed.
pub fn inventory(data: &[u8], file_name: &str) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sources = Sources::new();
    match roll::inventory::parse_text(&sources, Path::new(file_name), text.to_owned()) {
        Ok(mut inv) => {
            let _ = inv.groups_value();
            for pattern in ["all", "ungrouped", "web:!db", "*1", "web[0:1]"] {
                let _ = roll::inventory::pattern::resolve(&mut inv, pattern);
            }
        }
        Err(diags) => {
            let _ = diags.render(&sources, false);
        }
    }
}

const PATTERN_INVENTORY: &str = "\
[web]
web[01:04].example.com
[db]
db1 ansible_host=10.0.0.9
[prod:children]
web
db
";

/// Host patterns (`a:b`, `a,b`, `!`, `&`, globs, `~regex`, `g[0:2]`) against a small fixed
/// inventory, and host-name ranges (`web[01:20]`).
pub fn pattern(data: &[u8]) {
    let Ok(pattern) = std::str::from_utf8(data) else { return };
    let sources = Sources::new();
    let mut inv = roll::inventory::parse_text(&sources, Path::new("hosts"), PATTERN_INVENTORY.to_owned())
        .expect("the fixed inventory parses");
    let hosts = inv.hosts.len();
    if let Ok(selected) = roll::inventory::pattern::resolve(&mut inv, pattern) {
        assert!(
            selected.iter().all(|&h| h < hosts),
            "a pattern selected a host that does not exist"
        );
    }
    let _ = roll::inventory::range::expand(pattern);
}

/// Template rendering with roll's environment (strict undefined, the Ansible filters), as a
/// string template, as an expression and as a condition.
pub fn template(data: &[u8]) {
    static TEMPLAR: OnceLock<Templar> = OnceLock::new();
    let Ok(source) = std::str::from_utf8(data) else { return };
    let t = TEMPLAR.get_or_init(Templar::new);
    let scope = scope();
    let _ = t.check(source);
    let _ = t.undeclared(source);
    let _ = t.render_string(source, &scope);
    let _ = t.eval(source, &scope);
    let _ = t.eval_bool(source, &scope);
}

/// The variables a deploy's templates typically see.
fn scope() -> Value {
    use std::collections::BTreeMap;
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("release", Value::from("2026.11.2"));
    m.insert("inventory_hostname", Value::from("web1"));
    m.insert("ports", from_serde(&BTreeMap::from([("blue", 8081), ("green", 8082)])));
    m.insert("groups", from_serde(&BTreeMap::from([("app", ["web1", "web2"])])));
    m.insert(
        "switch_state",
        from_serde(&BTreeMap::from([("rc", "0"), ("stdout", "{\"live\": \"blue\"}")])),
    );
    from_serde(&m)
}

/// The value parsers of durations and numbers: `clock::parse_duration` (`30s`, `2m`, `500ms`,
/// bare seconds), `clock::seconds` on the same text read as a float, `batches::SerialStep::parse`
/// (`3`, `"25%"`) and ports. Each refuses with an error, never panics, and what they accept is in
/// range.
pub fn durations(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = roll::clock::parse_duration(text) {
        assert!(d <= roll::clock::MAX_DURATION, "`{text}` parsed to {d:?}");
    }
    if let Ok(secs) = text.trim().parse::<f64>() {
        if let Ok(d) = roll::clock::seconds(secs) {
            assert!(d <= roll::clock::MAX_DURATION, "{secs} became {d:?}");
        }
    }
    match roll::batches::SerialStep::parse(text) {
        Some(roll::batches::SerialStep::Count(n)) => assert!(n >= 1),
        Some(roll::batches::SerialStep::Percent(p)) => assert!(p > 0.0 && p <= 100.0),
        None => {}
    }
    if let Ok(p) = roll::values::parse_port(text) {
        assert!(p >= 1);
    }
}

/// Deeply nested templates and expressions: the nesting check runs before minijinja's
/// recursive parser, so whatever it lets through must parse, compile and render without
/// overflowing the stack (the fuzzer's thread has the main thread's 8 MiB; roll's run has more).
pub fn nesting(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    static TEMPLAR: OnceLock<Templar> = OnceLock::new();
    let t = TEMPLAR.get_or_init(Templar::new);
    let scope = scope();
    let _ = roll::values::too_deep(text, false);
    let _ = roll::values::too_deep(text, true);
    let _ = t.check(text);
    let _ = t.check_expr(text);
    let _ = t.undeclared(text);
    let _ = t.render(text, &scope);
    let _ = t.eval(text, &scope);
}
