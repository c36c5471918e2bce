//! Jinja filters and tests written in Python (`filter_plugins/`, `test_plugins/`, a collection's
//! `plugins/filter/` and `plugins/test/`): one python3 process on the controller serves them for
//! the run, as ansible-core would call them in its own process.
//!
//! Plugins are the operator's code, like the playbook, so they run on the controller with its
//! environment. Values cross as JSON: what a plugin returns is data, never rendered again. The
//! process is started once, when the playbook brings plugin files, and ends with the run (its
//! stdin closes; it is killed if it lingers).

use super::Plugin;
use crate::secrets::Secrets;
use minijinja::value::{Kwargs, Rest};
use minijinja::{Environment, Error, ErrorKind, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Python side: reads the plugin files, then answers calls (see its header).
const BRIDGE: &str = include_str!("python_bridge.py");

/// One plugin file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginFile {
    pub path: PathBuf,
    /// [`Plugin::Filter`] or [`Plugin::Test`].
    pub kind: Plugin,
    /// What the names it defines are prefixed with: `ns.coll.` in a collection, else nothing.
    pub prefix: String,
    /// A collection's file is imported as a package module, so that its relative imports
    /// work: the directory holding `ansible_collections/`, and the module's dotted name.
    pub package: Option<(PathBuf, String)>,
}

/// The Python plugins of a run: the names they define, and what could not be loaded.
#[derive(Default)]
pub struct PythonPlugins {
    names: Vec<(Plugin, String)>,
    problems: Vec<(PathBuf, String)>,
    bridge: Option<Mutex<Bridge>>,
}

impl std::fmt::Debug for PythonPlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonPlugins")
            .field("names", &self.names)
            .field("problems", &self.problems)
            .finish()
    }
}

struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Bridge {
    fn ask(&mut self, request: &serde_json::Value) -> Result<serde_json::Value, String> {
        let stdin = self.stdin.as_mut().ok_or("the Python plugin process has ended")?;
        let mut line = request.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("the Python plugin process has ended ({e})"))?;
        let mut answer = String::new();
        match self.stdout.read_line(&mut answer) {
            Ok(0) => Err("the Python plugin process has ended".into()),
            Ok(_) => {
                serde_json::from_str(&answer).map_err(|e| format!("the Python plugin process answered badly: {e}"))
            }
            Err(e) => Err(format!("the Python plugin process could not be read: {e}")),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // EOF on stdin ends its loop; a plugin that keeps it alive is killed.
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kind_name(kind: Plugin) -> &'static str {
    match kind {
        Plugin::Filter => "filter",
        Plugin::Test => "test",
        Plugin::Lookup => "lookup",
    }
}

impl PythonPlugins {
    /// Start python3 with these files and learn the names they define; with no file, nothing
    /// is started. A file that cannot be loaded (python3 missing, an import error) is a
    /// problem, reported where one of the names it would have defined is used.
    pub fn load(files: &[PluginFile]) -> PythonPlugins {
        let mut out = PythonPlugins::default();
        if files.is_empty() {
            return out;
        }
        let all_failed = |why: String| files.iter().map(|f| (f.path.clone(), why.clone())).collect::<Vec<_>>();
        let spawned = Command::new("python3")
            // No bytecode written into the operator's repository.
            .args(["-B", "-c", BRIDGE, "roll-python-plugins"])
            // Named in `ps` by its first file, so that an operator (and a test) can tell it.
            .arg(&files[0].path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // What plugins print is theirs, and may hold values: never shown.
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                out.problems = all_failed(format!("python3 could not be started on the controller: {e}"));
                return out;
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            out.problems = all_failed("python3's pipes could not be opened".into());
            return out;
        };
        let mut bridge = Bridge {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        let request: Vec<serde_json::Value> = files
            .iter()
            .map(|f| {
                let mut o = serde_json::json!({
                    "path": f.path.display().to_string(),
                    "kind": kind_name(f.kind),
                    "prefix": f.prefix,
                });
                if let Some((root, module)) = &f.package {
                    o["root"] = root.display().to_string().into();
                    o["module"] = module.clone().into();
                }
                o
            })
            .collect();
        let answer = match bridge.ask(&serde_json::Value::Array(request)) {
            Ok(a) => a,
            Err(e) => {
                out.problems = all_failed(e);
                return out;
            }
        };
        for pair in answer["names"].as_array().into_iter().flatten() {
            let kind = match pair[0].as_str() {
                Some("filter") => Plugin::Filter,
                Some("test") => Plugin::Test,
                _ => continue,
            };
            if let Some(name) = pair[1].as_str() {
                out.names.push((kind, name.to_string()));
            }
        }
        for pair in answer["problems"].as_array().into_iter().flatten() {
            if let (Some(p), Some(e)) = (pair[0].as_str(), pair[1].as_str()) {
                out.problems.push((PathBuf::from(p), e.to_string()));
            }
        }
        out.bridge = Some(Mutex::new(bridge));
        out
    }

    /// Whether a plugin file defines this filter or test.
    pub fn has(&self, kind: Plugin, name: &str) -> bool {
        self.names.iter().any(|(k, n)| *k == kind && n == name)
    }

    /// The files that could not be loaded, with why.
    pub fn problems(&self) -> &[(PathBuf, String)] {
        &self.problems
    }

    fn call(&self, kind: Plugin, name: &str, positional: &[Value], kwargs: &Kwargs) -> Result<Value, Error> {
        let json = |v: &Value| {
            serde_json::to_value(v).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("a value given to the Python {} `{name}` is not data: {e}", kind.noun()),
                )
            })
        };
        let args = positional.iter().map(json).collect::<Result<Vec<_>, _>>()?;
        let mut named = serde_json::Map::new();
        for key in kwargs.args() {
            // `get` marks each one used: the plugin takes whatever it is given.
            named.insert(key.to_string(), json(&kwargs.get::<Value>(key)?)?);
        }
        let kwargs = serde_json::Value::Object(named);
        let request = serde_json::json!({
            "kind": kind_name(kind), "name": name, "args": args, "kwargs": kwargs,
        });
        let failed = |msg: String| Error::new(ErrorKind::InvalidOperation, msg);
        let bridge = self
            .bridge
            .as_ref()
            .ok_or_else(|| failed("the Python plugin process is not running".into()))?;
        let answer = bridge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ask(&request)
            .map_err(failed)?;
        if let Some(msg) = answer.get("error").and_then(|e| e.as_str()) {
            return Err(failed(format!("The {} plugin '{name}' failed: {msg}", kind.noun())));
        }
        Ok(crate::values::from_serde(&answer["ok"]))
    }

    /// Add every name to the engine, over a built-in one of the same name (ansible-core looks
    /// for a short name in the operator's plugin directories before its own).
    pub(super) fn register(self: &Arc<Self>, env: &mut Environment<'static>, secrets: &Arc<Secrets>) {
        for (kind, name) in &self.names {
            let plugins = self.clone();
            let secrets = secrets.clone();
            let n = name.clone();
            match kind {
                Plugin::Filter => env.add_filter(name.clone(), move |args: Rest<Value>, kwargs: Kwargs| {
                    let out = plugins.call(Plugin::Filter, &n, &args, &kwargs)?;
                    // What a plugin made from a secret is one too.
                    if args.iter().any(|a| reveals(&secrets, a)) {
                        secrets.add_value(&out);
                    }
                    Ok::<Value, Error>(out)
                }),
                Plugin::Test => env.add_test(name.clone(), move |args: Rest<Value>, kwargs: Kwargs| {
                    let out = plugins.call(Plugin::Test, &n, &args, &kwargs)?;
                    Ok::<bool, Error>(out.is_true())
                }),
                Plugin::Lookup => {}
            }
        }
    }
}

/// Whether any string inside `v` shows a secret of the run.
fn reveals(secrets: &Secrets, v: &Value) -> bool {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::String => secrets.reveals(v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => v.try_iter().is_ok_and(|items| {
            items.into_iter().any(|k| {
                reveals(secrets, &k)
                    || (v.kind() == ValueKind::Map && v.get_item(&k).is_ok_and(|x| reveals(secrets, &x)))
            })
        }),
        _ => false,
    }
}
