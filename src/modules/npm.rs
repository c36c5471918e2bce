//! `npm` (community.general.npm): node.js packages through the host's `npm` CLI, as
//! community.general's module drives it: `npm list --json --long` decides what is missing,
//! `npm outdated` what `state: latest` updates, then `npm install`, `update`, `uninstall` or
//! `ci` in `path` (or `--global`). It registers `changed` only, as that module does.

use super::spec::{GENERAL, ModuleSpec, p};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::{join, quote};
use minijinja::Value;

/// `npm`.
pub struct Npm;

static NPM: ModuleSpec = ModuleSpec {
    params: &[
        p("name"),
        p("path"),
        p("version"),
        p("global"),
        p("production"),
        p("executable"),
        p("registry"),
        p("state").choices(&["present", "absent", "latest"]),
        p("ignore_scripts"),
        p("unsafe_perm"),
        p("ci"),
        p("no_optional"),
        p("no_bin_links"),
        p("force"),
    ],
    ..ModuleSpec::new("npm", GENERAL)
};

impl Module for Npm {
    fn spec(&self) -> &'static ModuleSpec {
        &NPM
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// `get_bin_path`'s search: the host's PATH, then the sbin directories it adds.
const PATH: &str = "PATH=$PATH:/sbin:/usr/sbin:/usr/local/sbin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Absent,
    Latest,
}

#[derive(Debug, Clone)]
struct Want {
    name: Option<String>,
    /// `name@version` (the name alone for `absent` or without a version): what `list` looks
    /// for and what install commands name.
    name_version: Option<String>,
    path: Option<String>,
    global: bool,
    production: bool,
    executable: Option<Vec<String>>,
    registry: Option<String>,
    state: State,
    ignore_scripts: bool,
    unsafe_perm: bool,
    ci: bool,
    no_optional: bool,
    no_bin_links: bool,
    force: bool,
}

fn want(args: &Args) -> Result<Want, Failure> {
    let state = match args.str("state")?.as_deref() {
        None | Some("present") => State::Present,
        Some("absent") => State::Absent,
        Some("latest") => State::Latest,
        Some(other) => {
            return Err(format!("value of state must be one of: present, absent, latest, got: {other}").into());
        }
    };
    let name = args.str("name")?;
    if state == State::Absent && name.is_none() {
        return Err("state is absent but all of the following are missing: name".into());
    }
    let version = args.str("version")?;
    let name_version = match (&name, &version) {
        (Some(n), Some(v)) if state != State::Absent => Some(format!("{n}@{v}")),
        (None, Some(_)) if state != State::Absent => {
            return Err("`version` needs `name`: there is no package to put the version on".into());
        }
        (n, _) => n.clone(),
    };
    let global = args.bool("global", false)?;
    let path = args.str("path")?;
    if path.is_none() && !global {
        return Err("path must be specified when not using global".into());
    }
    Ok(Want {
        name,
        name_version,
        path,
        global,
        production: args.bool("production", false)?,
        executable: args
            .str("executable")?
            .map(|e| e.split(' ').map(str::to_string).collect()),
        registry: args.str("registry")?,
        state,
        ignore_scripts: args.bool("ignore_scripts", false)?,
        unsafe_perm: args.bool("unsafe_perm", false)?,
        ci: args.bool("ci", false)?,
        no_optional: args.bool("no_optional", false)?,
        no_bin_links: args.bool("no_bin_links", false)?,
        force: args.bool("force", false)?,
    })
}

/// A `path` parameter as Ansible's `type: path` reads it: `~` is the remote user's home.
fn shell_path(path: &str) -> String {
    match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("\"$HOME\"{}", quote(rest)),
        _ => quote(path),
    }
}

impl Want {
    /// The command line of one npm action, with the flags in the order the module gives them:
    /// `--production` only where npm installs, the package only where `named`.
    fn words(&self, npm: &[String], action: &[&str], named: bool) -> Vec<String> {
        let mut w: Vec<String> = npm.to_vec();
        w.extend(action.iter().map(|a| a.to_string()));
        let installs = action.iter().any(|a| matches!(*a, "install" | "update" | "ci"));
        for (on, flag) in [
            (self.global, "--global"),
            (self.production && installs, "--production"),
            (self.ignore_scripts, "--ignore-scripts"),
            (self.unsafe_perm, "--unsafe-perm"),
        ] {
            if on {
                w.push(flag.into());
            }
        }
        if named && let Some(n) = &self.name_version {
            w.push(n.clone());
        }
        if let Some(r) = &self.registry {
            w.extend(["--registry".to_string(), r.clone()]);
        }
        for (on, flag) in [
            (self.no_optional, "--no-optional"),
            (self.no_bin_links, "--no-bin-links"),
            (self.force, "--force"),
        ] {
            if on {
                w.push(flag.into());
            }
        }
        w
    }
}

/// Runs `words` in `path` (created first, as the module's `os.makedirs` does even in check
/// mode), in the C locale; a `path` that is not a directory fails with the module's message.
async fn exec(ctx: &Ctx<'_>, w: &Want, words: &[String]) -> Result<crate::connection::Output, Failure> {
    let cd = match &w.path {
        Some(p) => {
            let sp = shell_path(p);
            format!(
                "[ -e {sp} ] || mkdir -p {sp} || exit 1\n\
                 [ -d {sp} ] || {{ echo 'ROLL-NOT-A-DIRECTORY'; exit 1; }}\n\
                 cd {sp} || exit 1\n"
            )
        }
        None => String::new(),
    };
    let line = join(words);
    let first = quote(words.first().map_or("", String::as_str));
    let mut cmd = Command::new(format!(
        "{PATH}\nexport LANGUAGE=C LC_ALL=C\n{cd}\
         command -v {first} >/dev/null 2>&1 || {{ echo 'ROLL-NO-EXECUTABLE'; exit 1; }}\n\
         exec {line}"
    ));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    cmd.env = ctx.env.clone();
    let out = ctx.conn.exec(&cmd).await?;
    if out.rc == 1 && out.stdout_text() == "ROLL-NOT-A-DIRECTORY\n" {
        return Err(format!("path {} is not a directory", w.path.as_deref().unwrap_or_default()).into());
    }
    if out.rc == 1 && out.stdout_text() == "ROLL-NO-EXECUTABLE\n" {
        // `run_command`'s failure to start the program (ENOENT), shaped as it reports it.
        let mut r = ModuleResult::failed("Error executing command.").with("cmd", Value::from(line));
        r.rc = Some(2);
        r.stdout = Some(String::new());
        r.stderr = Some(String::new());
        return Err(Failure::Failed(Box::new(r)));
    }
    Ok(out)
}

/// The npm to run: `executable` split at spaces, else `npm` found on the host.
async fn find_npm(ctx: &Ctx<'_>, w: &Want) -> Result<Vec<String>, Failure> {
    if let Some(x) = &w.executable {
        return Ok(x.clone());
    }
    let mut cmd = Command::new(format!("{PATH}\ncommand -v npm || {{ echo \"$PATH\"; exit 1; }}"));
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    cmd.env = ctx.env.clone();
    let out = ctx.conn.exec(&cmd).await?;
    let text = out.stdout_text().trim().to_string();
    if out.rc != 0 {
        return Err(format!("Failed to find required executable \"npm\" in paths: {text}").into());
    }
    Ok(vec![text])
}

/// What `npm list --json --long` says: the names and `name@version`s installed, and whether
/// the wanted package (or, without one, the package.json's dependencies) is missing.
fn listed(w: &Want, json: &str) -> Result<(Vec<String>, bool), Failure> {
    let data: serde_json::Value = if json.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(json).map_err(|e| format!("Failed to parse NPM output with error {e}"))?
    };
    let mut installed = Vec::new();
    let mut missing = false;
    match data.get("dependencies").and_then(|d| d.as_object()) {
        Some(deps) => {
            for (dep, props) in deps {
                let flag = |k: &str| props.get(k).is_some_and(|v| v.as_bool() == Some(true) || v.is_string());
                if flag("missing") || flag("invalid") {
                    missing = true;
                } else {
                    installed.push(dep.clone());
                    if let Some(v) = props.get("version").and_then(|v| v.as_str()).filter(|v| !v.is_empty()) {
                        installed.push(format!("{dep}@{v}"));
                    }
                }
            }
            if let Some(nv) = &w.name_version
                && !installed.contains(nv)
            {
                missing = true;
            }
        }
        // No dependencies at all: the module counts its (possibly absent) name as missing.
        None => missing = true,
    }
    Ok((installed, missing))
}

/// The packages `npm outdated` lists, one per line after its header.
fn outdated(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split([' ', '\t', '@']).next().map(str::to_string))
        .collect()
}

/// An npm action the run carries out, in order.
#[derive(Debug, Clone, Copy)]
enum Action {
    Install,
    Update,
    Uninstall,
    Ci,
}

impl Action {
    fn words(self) -> &'static [&'static str] {
        match self {
            Action::Install => &["install"],
            Action::Update => &["update"],
            Action::Uninstall => &["uninstall"],
            Action::Ci => &["ci"],
        }
    }
}

struct Run {
    want: Want,
    npm: Vec<String>,
    actions: Vec<Action>,
}

apply_by!(Run, apply);

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let w = want(args)?;
    let npm = find_npm(ctx, &w).await?;
    let mut actions = Vec::new();
    if w.ci {
        actions.push(Action::Ci);
    } else {
        let out = exec(ctx, &w, &w.words(&npm, &["list", "--json", "--long"], false)).await?;
        let (installed, missing) = listed(&w, &out.stdout_text())?;
        match w.state {
            State::Present if missing => actions.push(Action::Install),
            State::Latest => {
                // check_rc is off: offline, `npm outdated` fails and lists nothing.
                let out = exec(ctx, &w, &w.words(&npm, &["outdated"], true)).await?;
                if missing {
                    actions.push(Action::Install);
                }
                if !outdated(&out.stdout_text()).is_empty() {
                    actions.push(Action::Update);
                }
            }
            State::Absent if w.name.as_ref().is_some_and(|n| installed.contains(n)) => {
                actions.push(Action::Uninstall);
            }
            _ => {}
        }
    }
    if actions.is_empty() {
        return Ok(Plan::Unchanged(ModuleResult::ok()));
    }
    Ok(Plan::Change {
        preview: ModuleResult::changed(),
        action: Box::new(Run { want: w, npm, actions }),
    })
}

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let Run { want: w, npm, actions } = run;
    for a in actions {
        let words = w.words(&npm, a.words(), true);
        let out = exec(ctx, &w, &words).await?;
        if out.rc != 0 {
            // `run_command`'s check_rc failure: stderr as the message, the command quoted.
            let err = out.stderr_text();
            let mut r = ModuleResult::failed(err.trim_end()).with("cmd", Value::from(join(&words)));
            r.rc = Some(i64::from(out.rc));
            r.stdout = Some(out.stdout_text());
            r.stderr = Some(err);
            return Err(Failure::Failed(Box::new(r)));
        }
    }
    Ok(ModuleResult::changed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want_of(name: Option<&str>, version: Option<&str>) -> Want {
        Want {
            name: name.map(str::to_string),
            name_version: match (name, version) {
                (Some(n), Some(v)) => Some(format!("{n}@{v}")),
                (n, _) => n.map(str::to_string),
            },
            path: Some("/app".into()),
            global: false,
            production: true,
            executable: None,
            registry: Some("http://r".into()),
            state: State::Present,
            ignore_scripts: true,
            unsafe_perm: false,
            ci: false,
            no_optional: false,
            no_bin_links: true,
            force: false,
        }
    }

    #[test]
    fn commands_list_flags_in_the_modules_order() {
        let w = want_of(Some("left"), Some("1.0.0"));
        let npm = vec!["npm".to_string()];
        assert_eq!(
            w.words(&npm, &["install"], true).join(" "),
            "npm install --production --ignore-scripts left@1.0.0 --registry http://r --no-bin-links"
        );
        assert_eq!(
            w.words(&npm, &["list", "--json", "--long"], false).join(" "),
            "npm list --json --long --ignore-scripts --registry http://r --no-bin-links"
        );
    }

    #[test]
    fn list_output_reads_as_the_module_reads_it() {
        let json = r#"{"dependencies":{"left":{"version":"1.0.0"},"right":{"missing":true}}}"#;
        let (installed, missing) = listed(&want_of(Some("left"), Some("1.0.0")), json).unwrap();
        assert_eq!(installed, vec!["left", "left@1.0.0"]);
        assert!(missing, "`right` is missing");
        let (_, missing) = listed(
            &want_of(Some("left"), Some("1.0.0")),
            r#"{"dependencies":{"left":{"version":"1.0.0"}}}"#,
        )
        .unwrap();
        assert!(!missing);
        let (_, missing) = listed(
            &want_of(Some("left"), Some("2.0.0")),
            r#"{"dependencies":{"left":{"version":"1.0.0"}}}"#,
        )
        .unwrap();
        assert!(missing);
        let (_, missing) = listed(&want_of(None, None), r#"{"name":"app"}"#).unwrap();
        assert!(missing, "no dependencies at all counts as missing");
        assert_eq!(outdated("Package Current\nleft 1.0.0\n"), vec!["Package", "left"]);
    }
}
