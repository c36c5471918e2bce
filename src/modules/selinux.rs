//! `seboolean` (ansible.posix): known, with its parameters checked before any host, so roles
//! that set SELinux booleans on Red Hat hosts read whole; on a host whose SELinux is disabled
//! it fails as ansible.posix's module does there, and where SELinux runs it says that roll does
//! not drive it yet (no host here runs SELinux to test it against).

use super::spec::{ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, Plan, Step};
use crate::connection::Command;

/// `seboolean`: set an SELinux boolean.
pub struct SeBoolean;

static SEBOOLEAN: ModuleSpec = ModuleSpec {
    params: &[req("name"), req("state"), p("persistent"), p("ignore_selinux_state")],
    ..ModuleSpec::new("seboolean", &["ansible.posix"])
};

impl Module for SeBoolean {
    fn spec(&self) -> &'static ModuleSpec {
        &SEBOOLEAN
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    args.bool("state", false)?;
    args.bool("persistent", false)?;
    let ignore = args.bool("ignore_selinux_state", false)?;
    // libselinux's is_selinux_enabled: selinuxfs mounted with an `enforce` file.
    let mut cmd = Command::new("[ -e /sys/fs/selinux/enforce ] && echo enabled; true".to_string());
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    if out.stdout_text().trim() != "enabled" && !ignore {
        return Err("SELinux is disabled on this host.".to_string().into());
    }
    Err("roll's `seboolean` module is not built for hosts that run SELinux yet"
        .to_string()
        .into())
}
