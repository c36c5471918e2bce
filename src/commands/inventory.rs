//! `roll inventory`: `--list`, `--graph` and `--host` in ansible-inventory's formats.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::exit::Exit;
use crate::inventory::Inventory;
use crate::source::Sources;
use crate::values::VarMap;
use serde_json::{Map, Value as Json};

pub fn run(args: crate::cli::InventoryArgs) -> Exit {
    let sources = Sources::new();
    let out = crate::settings::Output::detect();
    let color = out.color;
    match crate::commands::vault::keyring(&args.vault) {
        Ok(k) => sources.set_vault(k),
        Err(d) => {
            eprint!("{}", Diagnostics::from(d).render(&sources, color));
            return Exit::InvalidInput;
        }
    }
    let cfg = match crate::commands::play::ansible_config(&sources, &out, 0) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let inventory = match crate::settings::inventory(args.inventory.clone(), &cfg) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{}", Diagnostics::from(d).render(&sources, color));
            return Exit::InvalidInput;
        }
    };
    let inv = match crate::inventory::load(&sources, &inventory, &[]) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{}", d.render(&sources, color));
            return Exit::InvalidInput;
        }
    };
    let text = if args.list {
        pretty(&list(&inv))
    } else if let Some(name) = &args.host {
        match inv.host(name) {
            Some(h) => pretty(&vars_json(&inv.hosts[h].vars)),
            None => {
                let d = Diagnostic::error(format!("host `{name}` is not in the inventory"))
                    .suggest(name, inv.hosts.iter().map(|h| h.name.as_str()))
                    .or_help("`roll inventory -i INV --list` lists every host");
                eprint!("{}", Diagnostics::from(d).render(&sources, color));
                return Exit::InvalidInput;
            }
        }
    } else {
        let root = args.graph.as_deref().unwrap_or("all");
        if !inv.groups.contains_key(root) {
            let d = Diagnostic::error(format!("group `{root}` is not in the inventory"))
                .suggest(root, inv.groups.keys().map(String::as_str))
                .or_help("`roll inventory -i INV --graph` shows every group");
            eprint!("{}", Diagnostics::from(d).render(&sources, color));
            return Exit::InvalidInput;
        }
        let mut out = String::new();
        graph(&inv, root, 0, args.vars, &mut out);
        out.trim_end().to_string()
    };
    // Vault values are secrets here too (ansible-inventory shows their ciphertext).
    super::print_out(&sources.secrets().mask(&text))
}

fn pretty(v: &Json) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

fn vars_json(vars: &VarMap) -> Json {
    let mut keys: Vec<&String> = vars.keys().collect();
    keys.sort();
    Json::Object(
        keys.into_iter()
            .map(|k| (k.clone(), serde_json::to_value(&vars[k]).unwrap_or(Json::Null)))
            .collect(),
    )
}

/// ansible-inventory `--list`: `_meta.hostvars` holds every host's merged variables, groups hold
/// their direct hosts and children; empty groups appear only as children.
pub fn list(inv: &Inventory) -> Json {
    let mut root = Map::new();
    let mut hostvars = Map::new();
    let mut names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    names.sort();
    for n in names {
        // A host without variables is left out, as ansible-inventory leaves it out.
        if let Some(h) = inv.host(n)
            && !inv.hosts[h].vars.is_empty()
        {
            hostvars.insert(n.to_string(), vars_json(&inv.hosts[h].vars));
        }
    }
    let mut meta = Map::new();
    meta.insert("hostvars".into(), Json::Object(hostvars));
    root.insert("_meta".into(), Json::Object(meta));
    for (name, g) in &inv.groups {
        let mut obj = Map::new();
        if !g.children.is_empty() {
            obj.insert(
                "children".into(),
                Json::Array(g.children.iter().map(|c| Json::String(c.clone())).collect()),
            );
        }
        if !g.hosts.is_empty() && name != "all" {
            obj.insert(
                "hosts".into(),
                Json::Array(
                    g.hosts
                        .iter()
                        .map(|h| Json::String(inv.hosts[*h].name.clone()))
                        .collect(),
                ),
            );
        }
        if !obj.is_empty() {
            root.insert(name.clone(), Json::Object(obj));
        }
    }
    Json::Object(root)
}

fn graph(inv: &Inventory, group: &str, depth: usize, vars: bool, out: &mut String) {
    let pad = |d: usize| {
        if d == 0 {
            String::new()
        } else {
            format!("{}|--", "  |".repeat(d - 1) + "  ")
        }
    };
    out.push_str(&format!("{}@{group}:\n", pad(depth)));
    let Some(g) = inv.groups.get(group) else { return };
    for c in &g.children {
        graph(inv, c, depth + 1, vars, out);
    }
    for h in &g.hosts {
        if group == "all" {
            continue;
        }
        out.push_str(&format!("{}{}\n", pad(depth + 1), inv.hosts[*h].name));
        if vars {
            let hv = &inv.hosts[*h].vars;
            let mut keys: Vec<&String> = hv.keys().collect();
            keys.sort();
            for k in keys {
                out.push_str(&format!(
                    "{}{{{k} = {}}}\n",
                    pad(depth + 2),
                    crate::values::value_to_string(&hv[k])
                ));
            }
        }
    }
}
