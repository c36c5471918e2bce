//! `nagios` (community.general.nagios): external commands written to the Nagios command file
//! (`cmdfile`, else the `command_file` of the first nagios.cfg found where the collection's
//! module looks), one write per command, as that module writes them; registers the commands as
//! `nagios_commands`. In check mode the task is skipped, as ansible-core skips that module.

use super::spec::{GENERAL, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use minijinja::Value;

/// `nagios`.
pub struct Nagios;

const ACTIONS: &[&str] = &[
    "downtime",
    "delete_downtime",
    "silence",
    "unsilence",
    "enable_alerts",
    "disable_alerts",
    "silence_nagios",
    "unsilence_nagios",
    "command",
    "servicegroup_host_downtime",
    "servicegroup_service_downtime",
    "acknowledge",
    "forced_check",
];

static NAGIOS: ModuleSpec = ModuleSpec {
    params: &[
        req("action").choices(ACTIONS),
        p("author"),
        p("comment"),
        p("host"),
        p("servicegroup"),
        p("start"),
        p("minutes"),
        p("cmdfile"),
        p("services").aliases(&["service"]),
        p("command"),
    ],
    ..ModuleSpec::new("nagios", GENERAL)
};

impl Module for Nagios {
    fn spec(&self) -> &'static ModuleSpec {
        &NAGIOS
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// Where the module looks for nagios.cfg (or icinga.cfg), in its order. Debian's nagios4
/// (`/etc/nagios4/nagios.cfg`) is not among them: there `cmdfile` must be given.
const CONFIGS: &[&str] = &[
    "/etc/nagios/nagios.cfg",
    "/etc/nagios3/nagios.cfg",
    "/etc/nagios2/nagios.cfg",
    "/usr/local/etc/nagios/nagios.cfg",
    "/usr/local/groundwork/nagios/etc/nagios.cfg",
    "/omd/sites/oppy/tmp/nagios/nagios.cfg",
    "/usr/local/nagios/etc/nagios.cfg",
    "/usr/local/nagios/nagios.cfg",
    "/opt/nagios/etc/nagios.cfg",
    "/opt/nagios/nagios.cfg",
    "/etc/icinga/icinga.cfg",
    "/usr/local/icinga/etc/icinga.cfg",
];

/// Which of `services` the module means: the host itself, all its services, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Services {
    None,
    Host,
    All,
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct Want {
    action: String,
    author: String,
    comment: String,
    host: Option<String>,
    servicegroup: Option<String>,
    start: Option<i64>,
    minutes: i64,
    cmdfile: Option<String>,
    services: Services,
    command: Option<String>,
}

fn want(args: &Args) -> Result<Want, Failure> {
    let action = args.req_str("action")?;
    if !ACTIONS.contains(&action.as_str()) {
        return Err(format!("value of action must be one of: {}, got: {action}", ACTIONS.join(", ")).into());
    }
    let services = match args.list("services") {
        None => Services::None,
        Some(s) if s.len() == 1 && s[0] == "host" => Services::Host,
        Some(s) if s.len() == 1 && s[0] == "all" => Services::All,
        Some(s) => Services::List(s),
    };
    let int =
        |k: &str| -> Result<Option<i64>, Failure> {
            match args.str(k)? {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    format!("argument '{k}' is of type str and we were unable to convert to int: {v}").into()
                }),
            }
        };
    let w = Want {
        author: args.str("author")?.unwrap_or_else(|| "Ansible".into()),
        comment: args.str("comment")?.unwrap_or_else(|| "Scheduling downtime".into()),
        host: args.str("host")?,
        servicegroup: args.str("servicegroup")?,
        start: int("start")?,
        minutes: int("minutes")?.unwrap_or(30),
        cmdfile: args.str("cmdfile")?,
        services,
        command: args.str("command")?,
        action,
    };
    // The module's `required_if`, in its order and wording.
    let needs: &[&str] = match w.action.as_str() {
        "downtime" | "delete_downtime" | "enable_alerts" | "disable_alerts" | "acknowledge" | "forced_check" => {
            &["host", "services"]
        }
        "silence" | "unsilence" => &["host"],
        "command" => &["command"],
        "servicegroup_host_downtime" | "servicegroup_service_downtime" => &["host", "servicegroup"],
        _ => &[],
    };
    let given = |k: &str| match k {
        "host" => w.host.is_some(),
        "services" => w.services != Services::None,
        "servicegroup" => w.servicegroup.is_some(),
        _ => w.command.is_some(),
    };
    let missing: Vec<&str> = needs.iter().copied().filter(|k| !given(k)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "action is {} but all of the following are missing: {}",
            w.action,
            missing.join(", ")
        )
        .into());
    }
    Ok(w)
}

impl Want {
    /// The commands the action writes, without their `[time] ` prefix and newline, given the
    /// host's time (`now`) for the fields that take it.
    fn commands(&self, now: i64) -> Vec<String> {
        let host = self.host.clone().unwrap_or_default();
        let list = match &self.services {
            Services::List(l) => l.clone(),
            _ => Vec::new(),
        };
        let downtime = |cmd: &str, target: &str, svc: Option<&str>| {
            let start = self.start.unwrap_or(now);
            let secs = self.minutes * 60;
            let mut f = vec![cmd.to_string(), target.to_string()];
            f.extend(svc.map(str::to_string));
            f.extend([
                start.to_string(),
                (start + secs).to_string(),
                "1".into(),
                "0".into(),
                secs.to_string(),
                self.author.clone(),
                self.comment.clone(),
            ]);
            f.join(";")
        };
        let ack = |cmd: &str, svc: Option<&str>| {
            let mut f = vec![cmd.to_string(), host.clone()];
            f.extend(svc.map(str::to_string));
            f.extend([
                "0".into(),
                "1".into(),
                "0".into(),
                self.author.clone(),
                self.comment.clone(),
            ]);
            f.join(";")
        };
        let check = |cmd: &str, svc: Option<&str>| {
            let mut f = vec![cmd.to_string(), host.clone()];
            f.extend(svc.map(str::to_string));
            f.push(self.start.unwrap_or(now + 3).to_string());
            f.join(";")
        };
        // `DEL_DOWNTIME_BY_HOST_NAME;host;[svc];[start];[comment]`: the module never passes a
        // start, and `all` deletes by an empty comment.
        let del = |svc: Option<&str>, comment: &str| {
            format!("DEL_DOWNTIME_BY_HOST_NAME;{host};{};;{comment}", svc.unwrap_or(""))
        };
        let notif = |cmd: &str, svc: Option<&str>| match svc {
            Some(s) => format!("{cmd};{host};{s}"),
            None => format!("{cmd};{host}"),
        };
        let each = |f: &dyn Fn(Option<&str>) -> String| list.iter().map(|s| f(Some(s))).collect::<Vec<_>>();
        let sg = self.servicegroup.clone().unwrap_or_default();
        match (self.action.as_str(), &self.services) {
            ("downtime", Services::Host) => vec![downtime("SCHEDULE_HOST_DOWNTIME", &host, None)],
            ("downtime", Services::All) => vec![downtime("SCHEDULE_HOST_SVC_DOWNTIME", &host, None)],
            ("downtime", _) => each(&|s| downtime("SCHEDULE_SVC_DOWNTIME", &host, s)),
            ("acknowledge", Services::Host) => vec![ack("ACKNOWLEDGE_HOST_PROBLEM", None)],
            ("acknowledge", _) => each(&|s| ack("ACKNOWLEDGE_SVC_PROBLEM", s)),
            ("delete_downtime", Services::Host) => vec![del(None, &self.comment)],
            ("delete_downtime", Services::All) => vec![del(None, "")],
            ("delete_downtime", _) => each(&|s| del(s, &self.comment)),
            ("forced_check", Services::Host) => vec![check("SCHEDULE_FORCED_HOST_CHECK", None)],
            ("forced_check", Services::All) => vec![check("SCHEDULE_FORCED_HOST_SVC_CHECKS", None)],
            ("forced_check", _) => each(&|s| check("SCHEDULE_FORCED_SVC_CHECK", s)),
            ("servicegroup_host_downtime", _) if !sg.is_empty() => {
                vec![downtime("SCHEDULE_SERVICEGROUP_HOST_DOWNTIME", &sg, None)]
            }
            ("servicegroup_service_downtime", _) if !sg.is_empty() => {
                vec![downtime("SCHEDULE_SERVICEGROUP_SVC_DOWNTIME", &sg, None)]
            }
            ("silence", _) => vec![
                notif("DISABLE_HOST_SVC_NOTIFICATIONS", None),
                notif("DISABLE_HOST_NOTIFICATIONS", None),
            ],
            ("unsilence", _) => vec![
                notif("ENABLE_HOST_SVC_NOTIFICATIONS", None),
                notif("ENABLE_HOST_NOTIFICATIONS", None),
            ],
            ("enable_alerts", Services::Host) => vec![notif("ENABLE_HOST_NOTIFICATIONS", None)],
            ("enable_alerts", Services::All) => vec![notif("ENABLE_HOST_SVC_NOTIFICATIONS", None)],
            ("enable_alerts", _) => each(&|s| notif("ENABLE_SVC_NOTIFICATIONS", s)),
            ("disable_alerts", Services::Host) => vec![notif("DISABLE_HOST_NOTIFICATIONS", None)],
            ("disable_alerts", Services::All) => vec![notif("DISABLE_HOST_SVC_NOTIFICATIONS", None)],
            ("disable_alerts", _) => each(&|s| notif("DISABLE_SVC_NOTIFICATIONS", s)),
            ("silence_nagios", _) => vec!["DISABLE_NOTIFICATIONS".into()],
            ("unsilence_nagios", _) => vec!["ENABLE_NOTIFICATIONS".into()],
            ("command", _) => vec![self.command.clone().unwrap_or_default()],
            _ => Vec::new(),
        }
    }
}

async fn sh(ctx: &Ctx<'_>, script: String) -> Result<crate::connection::Output, Failure> {
    let mut cmd = Command::new(script);
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    cmd.env = ctx.env.clone();
    Ok(ctx.conn.exec(&cmd).await?)
}

/// The command file: `cmdfile`, else the first `command_file=` line of the first config that
/// has one (the text after its first `=`, trimmed).
async fn find_cmdfile(ctx: &Ctx<'_>, w: &Want) -> Result<String, Failure> {
    if let Some(c) = &w.cmdfile {
        return Ok(c.clone());
    }
    let configs: Vec<String> = CONFIGS.iter().map(|c| quote(c)).collect();
    let out = sh(
        ctx,
        format!(
            "for f in {}; do [ -e \"$f\" ] || continue; l=$(grep -m1 '^command_file' \"$f\") && \
             {{ printf '%s\\n' \"$l\" | cut -d= -f2; exit 0; }}; done; exit 3",
            configs.join(" ")
        ),
    )
    .await?;
    let found = out.stdout_text().trim().to_string();
    if out.rc != 0 || found.is_empty() {
        return Err("unable to locate nagios.cfg".into());
    }
    Ok(found)
}

struct Run {
    want: Want,
    cmdfile: String,
}

apply_by!(Run, apply);

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    // The collection's module does not declare check mode support (its own check-mode branch
    // is never reached): ansible-core skips the task before the module runs.
    if ctx.check_mode {
        let mut r = ModuleResult::ok().with_msg("remote module (community.general.nagios) does not support check mode");
        r.skipped = true;
        return Ok(Plan::Unchanged(r));
    }
    let w = want(args)?;
    let cmdfile = find_cmdfile(ctx, &w).await?;
    Ok(Plan::Change {
        preview: ModuleResult::changed(),
        action: Box::new(Run { want: w, cmdfile }),
    })
}

fn cmdfile_failure(msg: &str, cmdfile: &str) -> Failure {
    Failure::Failed(Box::new(ModuleResult::failed(msg).with("cmdfile", cmdfile)))
}

async fn apply(run: Run, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let Run { want: w, cmdfile } = run;
    let f = quote(&cmdfile);
    let out = sh(
        ctx,
        format!("date +%s; if [ ! -e {f} ]; then echo MISSING; elif [ ! -p {f} ]; then echo NOFIFO; fi"),
    )
    .await?;
    let text = out.stdout_text();
    let mut lines = text.lines();
    let now: i64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("cannot read the host's time: {}", out.stderr_text().trim()))?;
    match lines.next() {
        Some("MISSING") => return Err(cmdfile_failure("nagios command file does not exist", &cmdfile)),
        Some("NOFIFO") => return Err(cmdfile_failure("nagios command file is not a fifo file", &cmdfile)),
        _ => {}
    }
    // Each command is its own open and write of the fifo, as the module's; a write blocks until
    // Nagios reads the pipe.
    let commands: Vec<String> = w.commands(now).iter().map(|c| format!("[{now}] {c}")).collect();
    let mut script = String::new();
    for (i, c) in commands.iter().enumerate() {
        script.push_str(&format!(
            "printf '%s\\n' {} > {f} || {{ echo FAILED {i}; exit 1; }}\n",
            quote(c)
        ));
    }
    let written = if script.is_empty() {
        0
    } else {
        let out = sh(ctx, script).await?;
        if out.rc != 0 {
            return Err(cmdfile_failure("unable to write to nagios command file", &cmdfile));
        }
        commands.len()
    };
    let registered: Vec<Value> = commands[..written].iter().map(|c| Value::from(c.as_str())).collect();
    Ok(ModuleResult::changed().with("nagios_commands", Value::from(registered)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(action: &str, services: Services) -> Want {
        Want {
            action: action.into(),
            author: "Ansible".into(),
            comment: "Scheduling downtime".into(),
            host: Some("web1".into()),
            servicegroup: None,
            start: None,
            minutes: 30,
            cmdfile: None,
            services,
            command: None,
        }
    }

    #[test]
    fn actions_write_the_modules_commands() {
        let list = Services::List(vec!["webserver".into(), "db".into()]);
        assert_eq!(
            w("disable_alerts", list.clone()).commands(100),
            [
                "DISABLE_SVC_NOTIFICATIONS;web1;webserver",
                "DISABLE_SVC_NOTIFICATIONS;web1;db"
            ]
        );
        assert_eq!(
            w("downtime", Services::Host).commands(100),
            ["SCHEDULE_HOST_DOWNTIME;web1;100;1900;1;0;1800;Ansible;Scheduling downtime"]
        );
        assert_eq!(
            w("delete_downtime", Services::All).commands(100),
            ["DEL_DOWNTIME_BY_HOST_NAME;web1;;;"]
        );
        assert_eq!(
            w("forced_check", list).commands(100)[0],
            "SCHEDULE_FORCED_SVC_CHECK;web1;webserver;103"
        );
        assert_eq!(
            w("silence_nagios", Services::None).commands(1),
            ["DISABLE_NOTIFICATIONS"]
        );
    }
}
