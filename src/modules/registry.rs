//! The one list of modules roll runs. A module is a file of `src/modules/` with a type that
//! implements [`Module`], plus its line here; the parser, checker and scheduler find it (by
//! any of its names) and ask its spec, never its name.

use super::spec::{BUILTIN, DOCKER};
use super::{
    Module, accounts, app_claim, apt_sources, argument_spec, bluegreen, command, control, cron, deploy_lock, docker,
    files, find, get_url, getent, git, haproxy, include_vars, lines, nginx_switch, other_managers, packages, ping, pip,
    probe, raw, selinux, services, setup, stat, unarchive,
};

pub static MODULES: &[&dyn Module] = &[
    &command::Command,
    &command::Shell,
    &raw::Raw,
    &raw::Script,
    &files::Template,
    &super::copy::Copy,
    &files::File,
    &super::fetch::Fetch,
    &super::tempfile::TempFile,
    &super::assemble::Assemble,
    &super::ini_file::IniFile,
    &lines::LineInFile,
    &lines::BlockInFile,
    &lines::Replace,
    &stat::Stat,
    &stat::Slurp,
    &find::Find,
    &argument_spec::ValidateArgumentSpec,
    &accounts::User,
    &accounts::Group,
    &cron::Cron,
    &services::Service,
    &services::ServiceFacts,
    &services::Systemd,
    &services::SystemdService,
    &packages::Apt,
    &packages::Package,
    &packages::Yum,
    &packages::Dnf,
    &pip::Pip,
    &super::npm::Npm,
    &apt_sources::AptKey,
    &apt_sources::AptRepository,
    &apt_sources::Deb822Repository,
    &other_managers::ZYPPER,
    &other_managers::ZYPPER_REPOSITORY,
    &other_managers::PACMAN,
    &other_managers::PKGNG,
    &other_managers::OPENBSD_PKG,
    &other_managers::RPM_KEY,
    &other_managers::YUM_REPOSITORY,
    &selinux::SeBoolean,
    &git::Git,
    &get_url::GetUrl,
    &getent::Getent,
    &unarchive::Unarchive,
    &super::synchronize::Synchronize,
    &super::authorized_key::AuthorizedKey,
    &super::wait_for_connection::WaitForConnection,
    &probe::WaitFor,
    &probe::Uri,
    &control::Pause,
    &control::Debug,
    &control::SetFact,
    &include_vars::IncludeVars,
    &control::Assert,
    &control::Fail,
    &ping::Ping,
    &setup::Setup,
    &haproxy::Haproxy,
    &super::mysql::MysqlDb,
    &super::mysql::MysqlUser,
    &super::nagios::Nagios,
    &docker::image::DockerImage,
    &docker::container::DockerContainer,
    &docker::login::DockerLogin,
    &docker::network::DockerNetwork,
    &docker::info::DockerContainerInfo,
    &docker::prune::DockerPruneReleases,
    &docker::exec::DockerContainerExec,
    &docker::volume::DockerVolume,
    &deploy_lock::DeployLock,
    &nginx_switch::NginxSwitch,
    &app_claim::AppClaim,
    &bluegreen::BluegreenFacts,
    &bluegreen::BluegreenRecord,
];

/// The module a task names, by its short or qualified name (`command`,
/// `ansible.builtin.command`, `community.docker.docker_container`, `roll.nginx_switch`).
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    MODULES.iter().copied().find(|m| m.spec().is_named(name))
}

/// Ansible modules roll does not have yet, by short or qualified name: what to write instead.
/// community.docker's Compose and swarm ones (Debian's engine here has no Compose v2 and the
/// tests share one engine, so neither can be tested for real yet).
pub fn not_yet(name: &str) -> Option<&'static str> {
    let short = match name.rsplit_once('.') {
        Some((prefix, short)) if DOCKER.contains(&prefix) || BUILTIN.contains(&prefix) => short,
        Some(_) => return None,
        None => name,
    };
    Some(match short {
        "docker_compose" | "docker_compose_v2" | "docker_compose_v2_pull" | "docker_stack" => {
            "Compose projects are not supported by roll yet: write a `docker_container` task per service \
             (and `docker_network` for their network), or `roll.bluegreen` for a web app"
        }
        "docker_config" | "docker_secret" | "docker_swarm" | "docker_swarm_service" | "docker_node" => {
            "swarm mode is not supported by roll yet: give containers their files with `copy` or \
             `template` and a bind mount in `volumes`"
        }
        _ => return None,
    })
}

/// Every name a module can be written as, for suggestions.
pub fn all_names() -> impl Iterator<Item = String> {
    MODULES.iter().flat_map(|m| {
        let s = m.spec();
        std::iter::once(s.name.to_string()).chain(s.collections.iter().map(move |c| format!("{c}.{}", s.name)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_is_found_by_each_of_its_names_and_listed_once() {
        for m in MODULES {
            let s = m.spec();
            assert!(std::ptr::eq(lookup(s.name).unwrap().spec(), s), "{}", s.name);
            for c in s.collections {
                assert!(std::ptr::eq(lookup(&format!("{c}.{}", s.name)).unwrap().spec(), s));
            }
        }
        let mut names: Vec<&str> = MODULES.iter().map(|m| m.spec().name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a module is listed twice");
        assert!(lookup("community.docker.command").is_none());
        // ansible-core's builtin routing: every builtin under `ansible.legacy.`, and the
        // redirected short names of collection modules under both builtin prefixes.
        assert_eq!(lookup("ansible.legacy.copy").unwrap().spec().name, "copy");
        assert_eq!(lookup("ansible.legacy.haproxy").unwrap().spec().name, "haproxy");
        assert_eq!(
            lookup("ansible.builtin.docker_container").unwrap().spec().name,
            "docker_container"
        );
        assert!(lookup("ansible.legacy.nginx_switch").is_none());
        assert!(lookup("community.general.docker_container").is_none());
        assert_eq!(lookup("ansible.builtin.mysql_db").unwrap().spec().name, "mysql_db");
        assert_eq!(lookup("community.mysql.mysql_user").unwrap().spec().name, "mysql_user");
        assert!(lookup("nope").is_none());
    }
}
