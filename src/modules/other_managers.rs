//! The package modules of other systems (`zypper`, `zypper_repository`, `pacman`, `pkgng`,
//! `openbsd_pkg`, `rpm_key`, `yum_repository`): known, with ansible-core's (or
//! community.general's) parameters checked before any host, so a role that includes
//! `setup-{{ ansible_os_family }}.yml` reads whole; on a host they fail naming what it has.

use super::packages::not_here;
use super::spec::{BUILTIN, ModuleSpec, p, req};
use super::{Args, Ctx, Module, Plan, Step};

/// One such module: its spec and the host tools it would drive.
pub struct Elsewhere {
    spec: &'static ModuleSpec,
    tools: &'static [&'static str],
}

impl Module for Elsewhere {
    fn spec(&self) -> &'static ModuleSpec {
        self.spec
    }

    fn check<'a>(&'a self, _args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(not_here(self.spec.name, self.tools, ctx))
    }
}

/// community.general's modules that ansible-core's builtin routing redirects to
/// (`ansible.legacy.zypper` is `community.general.zypper`).
const ROUTED: &[&str] = &["community.general", "ansible.builtin", "ansible.legacy"];

/// File parameters every module that writes a file takes (`add_file_common_args`).
macro_rules! with_file_args {
    ($($param:expr),* $(,)?) => {
        &[
            $($param,)*
            p("mode"),
            p("owner"),
            p("group"),
            p("seuser"),
            p("serole"),
            p("setype"),
            p("selevel"),
            p("unsafe_writes"),
            p("attributes").aliases(&["attr"]),
        ]
    };
}

pub static ZYPPER: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: &[
            req("name").aliases(&["pkg"]),
            p("state").choices(&["absent", "installed", "latest", "present", "removed", "dist-upgrade"]),
            p("type").choices(&["package", "patch", "pattern", "product", "srcpackage", "application"]),
            p("extra_args_precommand"),
            p("disable_gpg_check"),
            p("disable_recommends"),
            p("force"),
            p("force_resolution"),
            p("update_cache").aliases(&["refresh"]),
            p("oldpackage"),
            p("extra_args"),
            p("allow_vendor_change"),
            p("replacefiles"),
            p("clean_deps"),
            p("simple_errors"),
            p("quiet"),
            p("skip_post_errors"),
        ],
        ..ModuleSpec::new("zypper", ROUTED)
    },
    tools: &["zypper"],
};

pub static ZYPPER_REPOSITORY: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: &[
            p("name"),
            p("repo"),
            p("state").choices(&["absent", "present"]),
            p("runrefresh"),
            p("description"),
            p("disable_gpg_check"),
            p("autorefresh").aliases(&["refresh"]),
            p("priority"),
            p("overwrite_multiple"),
            p("auto_import_keys"),
            p("enabled"),
        ],
        ..ModuleSpec::new("zypper_repository", ROUTED)
    },
    tools: &["zypper"],
};

pub static PACMAN: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: &[
            p("name").aliases(&["package", "pkg"]),
            p("state").choices(&["absent", "installed", "latest", "present", "removed"]),
            p("force"),
            p("remove_nosave"),
            p("executable"),
            p("extra_args"),
            p("upgrade"),
            p("upgrade_extra_args"),
            p("update_cache").aliases(&["update-cache"]),
            p("update_cache_extra_args"),
            p("reason").choices(&["dependency", "explicit"]),
            p("reason_for").choices(&["all", "new"]),
        ],
        ..ModuleSpec::new("pacman", ROUTED)
    },
    tools: &["pacman"],
};

pub static PKGNG: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: &[
            req("name").aliases(&["pkg"]),
            p("state").choices(&["present", "latest", "absent", "installed", "removed"]),
            p("cached"),
            p("annotation"),
            p("pkgsite"),
            p("rootdir"),
            p("chroot"),
            p("jail"),
            p("autoremove"),
            p("ignore_osver"),
            p("use_globs"),
        ],
        ..ModuleSpec::new("pkgng", ROUTED)
    },
    tools: &["pkg"],
};

pub static OPENBSD_PKG: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: &[
            req("name"),
            p("state").choices(&["absent", "installed", "latest", "present", "removed"]),
            p("build"),
            p("snapshot"),
            p("ports_dir"),
            p("quick"),
            p("clean"),
            p("autoremove"),
        ],
        ..ModuleSpec::new("openbsd_pkg", ROUTED)
    },
    tools: &["pkg_add"],
};

pub static RPM_KEY: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: &[
            req("key"),
            p("state").choices(&["absent", "present"]),
            p("validate_certs"),
            p("fingerprint"),
        ],
        ..ModuleSpec::new("rpm_key", BUILTIN)
    },
    tools: &["rpm"],
};

pub static YUM_REPOSITORY: Elsewhere = Elsewhere {
    spec: &ModuleSpec {
        params: with_file_args![
            req("name"),
            p("async"),
            p("bandwidth"),
            p("baseurl"),
            p("cost"),
            p("countme"),
            p("deltarpm_metadata_percentage"),
            p("deltarpm_percentage"),
            p("description"),
            p("enabled"),
            p("enablegroups"),
            p("exclude").aliases(&["excludepkgs"]),
            p("failovermethod").choices(&["roundrobin", "priority"]),
            p("file"),
            p("gpgcakey"),
            p("gpgcheck"),
            p("gpgkey"),
            p("module_hotfixes"),
            p("http_caching").choices(&["all", "packages", "none"]),
            p("include"),
            p("includepkgs"),
            p("ip_resolve").choices(&["4", "6", "IPv4", "IPv6", "whatever"]),
            p("keepalive"),
            p("keepcache").choices(&["0", "1"]),
            p("metadata_expire"),
            p("metadata_expire_filter"),
            p("metalink"),
            p("mirrorlist"),
            p("mirrorlist_expire"),
            p("password"),
            p("priority"),
            p("protect"),
            p("proxy"),
            p("proxy_password"),
            p("proxy_username"),
            p("repo_gpgcheck"),
            p("reposdir"),
            p("retries"),
            p("s3_enabled"),
            p("skip_if_unavailable"),
            p("sslcacert").aliases(&["ca_cert"]),
            p("ssl_check_cert_permissions"),
            p("sslclientcert").aliases(&["client_cert"]),
            p("sslclientkey").aliases(&["client_key"]),
            p("sslverify").aliases(&["validate_certs"]),
            p("state").choices(&["present", "absent"]),
            p("throttle"),
            p("timeout"),
            p("ui_repoid_vars"),
            p("username"),
        ],
        ..ModuleSpec::new("yum_repository", BUILTIN)
    },
    tools: &["dnf", "yum"],
};
