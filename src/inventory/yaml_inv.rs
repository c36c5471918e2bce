//! Ansible's YAML inventory format: groups with `hosts`, `vars` and `children`, nested freely.

use super::{Builder, collect_templates, range};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources};
use crate::yaml::{self, Kind, Node};

const GROUP_KEYS: [&str; 3] = ["hosts", "vars", "children"];

pub(super) fn parse(sources: &Sources, file: FileId, b: &mut Builder) {
    let root = match yaml::parse(sources, file) {
        Ok(n) => n,
        Err(d) => return b.diags.push(d),
    };
    match &root.kind {
        Kind::Null => {}
        Kind::Map(pairs) => {
            for (k, v) in pairs {
                let Some(name) = group_name(k, b) else { continue };
                b.group(name, Some(k.span));
                if name != "all" {
                    b.add_child("all", name, Some(k.span));
                }
                group(name, v, b);
            }
        }
        _ => b.diags.push(
            Diagnostic::at(
                format!("an inventory must be a mapping of groups, found {}", root.type_name()),
                root.span,
            )
            .with_help("start the file with `all:` and list hosts under `all: { hosts: ... }`"),
        ),
    }
}

fn group_name<'a>(k: &'a Node, b: &mut Builder) -> Option<&'a str> {
    match k.as_str() {
        Some(s) if !s.is_empty() && !s.contains(char::is_whitespace) => Some(s),
        _ => {
            b.diags.push(
                Diagnostic::at("invalid group name", k.span)
                    .with_help("group names are letters, digits, `_` and `-`, without spaces"),
            );
            None
        }
    }
}

fn group(name: &str, node: &Node, b: &mut Builder) {
    let pairs = match &node.kind {
        Kind::Null => return,
        Kind::Map(p) => p,
        _ => {
            return b.diags.push(
                Diagnostic::at(
                    format!("group `{name}` must be a mapping, found {}", node.type_name()),
                    node.span,
                )
                .with_help("a group holds `hosts:`, `vars:` and `children:`"),
            );
        }
    };
    for (k, v) in pairs {
        match k.as_str() {
            Some("hosts") => hosts(name, v, b),
            Some("vars") => match &v.kind {
                Kind::Null => {}
                Kind::Map(vars) => {
                    for (vk, vv) in vars {
                        let Some(key) = var_name(vk, b) else { continue };
                        collect_templates(vv, &mut b.template_nodes);
                        b.group(name, None).vars.insert(key.to_string(), vv.to_value());
                    }
                }
                _ => b.diags.push(
                    Diagnostic::at(
                        format!("`vars` of group `{name}` must be a mapping, found {}", v.type_name()),
                        v.span,
                    )
                    .with_help("write variables as `name: value` under `vars:`"),
                ),
            },
            Some("children") => match &v.kind {
                Kind::Null => {}
                Kind::Map(children) => {
                    for (ck, cv) in children {
                        let Some(child) = group_name(ck, b) else { continue };
                        b.add_child(name, child, Some(ck.span));
                        group(child, cv, b);
                    }
                }
                _ => b.diags.push(
                    Diagnostic::at(
                        format!(
                            "`children` of group `{name}` must be a mapping, found {}",
                            v.type_name()
                        ),
                        v.span,
                    )
                    .with_help("list child groups as keys: `children: { app: {}, proxy: {} }`"),
                ),
            },
            Some(other) => b.diags.push(
                Diagnostic::at(format!("unknown key `{other}` in group `{name}`"), k.span)
                    .suggest(other, GROUP_KEYS)
                    .or_help("a group holds only `hosts:`, `vars:` and `children:`"),
            ),
            None => b.diags.push(Diagnostic::at("group keys must be strings", k.span)),
        }
    }
}

fn hosts(group: &str, node: &Node, b: &mut Builder) {
    let pairs = match &node.kind {
        Kind::Null => return,
        Kind::Map(p) => p,
        _ => {
            return b.diags.push(
                Diagnostic::at(
                    format!(
                        "`hosts` of group `{group}` must be a mapping, found {}",
                        node.type_name()
                    ),
                    node.span,
                )
                .with_help("list hosts as keys: `hosts: { web1: {}, web2: { ansible_host: 10.0.0.2 } }`"),
            );
        }
    };
    for (hk, hv) in pairs {
        let Some(raw) = hk.scalar_text().filter(|s| !s.is_empty()) else {
            b.diags.push(Diagnostic::at("invalid host name", hk.span));
            continue;
        };
        let mut vars = Vec::new();
        match &hv.kind {
            Kind::Null => {}
            Kind::Map(vs) => {
                for (vk, vv) in vs {
                    let Some(key) = var_name(vk, b) else { continue };
                    collect_templates(vv, &mut b.template_nodes);
                    vars.push((key.to_string(), vv.to_value()));
                }
            }
            _ => {
                b.diags.push(
                    Diagnostic::at(
                        format!("host `{raw}` must map to its variables, found {}", hv.type_name()),
                        hv.span,
                    )
                    .with_help("write `web1:` with nothing after it, or `web1: { ansible_host: 10.0.0.1 }`"),
                );
                continue;
            }
        }
        let (name, port) = match raw.rsplit_once(':') {
            Some((n, p)) if !raw.contains('[') || !p.contains(']') => match crate::values::parse_port(p) {
                Ok(port) => (n.to_string(), Some(port)),
                Err(_) => (raw.clone(), None),
            },
            _ => (raw.clone(), None),
        };
        if let Some(p) = port {
            vars.push(("ansible_port".into(), minijinja::Value::from(p)));
        }
        match range::expand(&name) {
            Ok(names) => {
                for n in names {
                    b.add_host(&n, Some(hk.span), group, vars.clone());
                }
            }
            Err(msg) => b.diags.push(
                Diagnostic::at(format!("invalid host range in `{name}`: {msg}"), hk.span)
                    .with_help("ranges look like `app[01:20]` or `db-[a:f]`"),
            ),
        }
    }
}

fn var_name<'a>(k: &'a Node, b: &mut Builder) -> Option<&'a str> {
    match k.as_str() {
        Some(s) if super::ini::valid_var_name(s) => Some(s),
        _ => {
            b.diags.push(
                Diagnostic::at(
                    format!("invalid variable name `{}`", k.scalar_text().unwrap_or_default()),
                    k.span,
                )
                .with_help("variable names start with a letter or `_` and hold only letters, digits and `_`"),
            );
            None
        }
    }
}

impl Diagnostic {
    pub(crate) fn or_help(self, help: &str) -> Diagnostic {
        if self.help.is_some() {
            self
        } else {
            self.with_help(help)
        }
    }
}
