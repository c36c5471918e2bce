//! The table of modules roll knows: names (short and Ansible-qualified), parameters, choices and
//! which parameters are required. The playbook checker validates every task against it.

/// How a module accepts a bare string (`command: ls -l`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeForm {
    /// `key=value` pairs only (`file: path=/x state=touch`).
    No,
    /// The string is the module's main argument (`command`, `shell`, `meta`).
    Yes,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub choices: &'static [&'static str],
    pub required: bool,
}

const fn p(name: &'static str) -> Param {
    Param {
        name,
        aliases: &[],
        choices: &[],
        required: false,
    }
}
const fn req(name: &'static str) -> Param {
    Param {
        name,
        aliases: &[],
        choices: &[],
        required: true,
    }
}
const fn alias(name: &'static str, aliases: &'static [&'static str]) -> Param {
    Param {
        name,
        aliases,
        choices: &[],
        required: false,
    }
}
const fn choice(name: &'static str, choices: &'static [&'static str]) -> Param {
    Param {
        name,
        aliases: &[],
        choices,
        required: false,
    }
}

#[derive(Debug)]
pub struct ModuleSpec {
    pub name: &'static str,
    /// Collections whose prefix names this module too (`ansible.builtin.command`).
    pub collections: &'static [&'static str],
    pub free_form: FreeForm,
    pub params: &'static [Param],
    /// At least one of these must be given (besides a free-form string).
    pub one_of: &'static [&'static str],
    /// Pairs that cannot be given together.
    pub exclusive: &'static [(&'static str, &'static str)],
    /// The task's hosts move in lockstep (see `exec::lockstep`).
    pub lockstep: bool,
}

impl ModuleSpec {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name || p.aliases.contains(&name))
    }

    pub fn param_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.params
            .iter()
            .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()))
    }
}

const BUILTIN: &[&str] = &["ansible.builtin", "ansible.legacy"];
const DOCKER: &[&str] = &["community.docker"];
const ROLL: &[&str] = &["roll"];

pub static MODULES: &[ModuleSpec] = &[
    ModuleSpec {
        name: "command",
        collections: BUILTIN,
        free_form: FreeForm::Yes,
        params: &[
            p("cmd"),
            p("argv"),
            p("chdir"),
            p("creates"),
            p("removes"),
            p("stdin"),
            p("stdin_add_newline"),
            p("strip_empty_ends"),
        ],
        one_of: &["cmd", "argv"],
        exclusive: &[("cmd", "argv")],
        lockstep: false,
    },
    ModuleSpec {
        name: "shell",
        collections: BUILTIN,
        free_form: FreeForm::Yes,
        params: &[
            p("cmd"),
            p("chdir"),
            p("creates"),
            p("removes"),
            p("executable"),
            p("stdin"),
            p("stdin_add_newline"),
            p("strip_empty_ends"),
        ],
        one_of: &["cmd"],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "template",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[
            req("src"),
            req("dest"),
            p("mode"),
            p("owner"),
            p("group"),
            p("backup"),
            p("validate"),
            p("force"),
        ],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "copy",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[
            p("src"),
            p("content"),
            req("dest"),
            p("mode"),
            p("owner"),
            p("group"),
            p("backup"),
            p("validate"),
            p("force"),
        ],
        one_of: &["src", "content"],
        exclusive: &[("src", "content")],
        lockstep: false,
    },
    ModuleSpec {
        name: "file",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[
            alias("path", &["dest", "name"]),
            choice("state", &["file", "directory", "absent", "touch", "link", "hard"]),
            p("src"),
            p("mode"),
            p("owner"),
            p("group"),
            p("recurse"),
            p("force"),
        ],
        one_of: &["path"],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "wait_for",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[
            p("host"),
            p("port"),
            p("path"),
            choice("state", &["started", "stopped", "present", "absent", "drained"]),
            p("timeout"),
            p("delay"),
            p("sleep"),
            p("connect_timeout"),
            p("search_regex"),
            p("msg"),
        ],
        one_of: &[],
        exclusive: &[("port", "path")],
        lockstep: false,
    },
    ModuleSpec {
        name: "uri",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[
            req("url"),
            choice("method", &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
            p("status_code"),
            p("return_content"),
            p("timeout"),
            p("body"),
            choice("body_format", &["raw", "json"]),
            p("headers"),
            p("validate_certs"),
            p("follow_redirects"),
        ],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "pause",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[p("seconds"), p("minutes"), p("prompt")],
        one_of: &[],
        exclusive: &[("seconds", "minutes")],
        lockstep: false,
    },
    ModuleSpec {
        name: "debug",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[p("msg"), p("var"), p("verbosity")],
        one_of: &[],
        exclusive: &[("msg", "var")],
        lockstep: false,
    },
    ModuleSpec {
        name: "set_fact",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "assert",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[req("that"), alias("fail_msg", &["msg"]), p("success_msg"), p("quiet")],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "fail",
        collections: BUILTIN,
        free_form: FreeForm::No,
        params: &[p("msg")],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "docker_image",
        collections: DOCKER,
        free_form: FreeForm::No,
        params: &[
            req("name"),
            p("tag"),
            choice("source", &["pull"]),
            p("force_source"),
            choice("state", &["present", "absent"]),
        ],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "docker_container",
        collections: DOCKER,
        free_form: FreeForm::No,
        params: &[
            req("name"),
            p("image"),
            p("command"),
            p("env"),
            p("env_file"),
            alias("ports", &["published_ports"]),
            p("volumes"),
            p("labels"),
            p("networks"),
            p("network_mode"),
            p("restart_policy"),
            p("healthcheck"),
            p("stop_signal"),
            p("stop_timeout"),
            p("log_driver"),
            p("log_options"),
            choice("state", &["started", "stopped", "absent", "present"]),
            p("recreate"),
            p("pull"),
            p("detach"),
            p("cleanup"),
            p("wait_healthy"),
        ],
        one_of: &[],
        exclusive: &[("networks", "network_mode")],
        lockstep: false,
    },
    ModuleSpec {
        name: "docker_login",
        collections: DOCKER,
        free_form: FreeForm::No,
        params: &[
            alias("registry", &["registry_url"]),
            p("username"),
            p("password"),
            p("reauthorize"),
            choice("state", &["present", "absent"]),
        ],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "docker_network",
        collections: DOCKER,
        free_form: FreeForm::No,
        params: &[
            req("name"),
            p("driver"),
            p("labels"),
            choice("state", &["present", "absent"]),
        ],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "docker_container_info",
        collections: DOCKER,
        free_form: FreeForm::No,
        params: &[req("name")],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "docker_prune_releases",
        collections: ROLL,
        free_form: FreeForm::No,
        params: &[req("app"), p("keep")],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "deploy_lock",
        collections: ROLL,
        free_form: FreeForm::No,
        params: &[req("app"), p("state"), p("dir"), p("ttl"), p("wait"), p("release")],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
    ModuleSpec {
        name: "nginx_switch",
        collections: ROLL,
        free_form: FreeForm::No,
        params: &[
            req("app"),
            req("to"),
            req("backends"),
            p("ports"),
            req("template"),
            req("dest"),
            p("batches"),
            p("batch_size"),
            p("serial"),
            p("pause"),
            p("validate"),
            p("reload"),
            p("pid_file"),
            p("gate"),
            p("healthcheck"),
            p("drain"),
            p("state_dir"),
            p("release"),
            p("database"),
            p("container"),
        ],
        one_of: &[],
        exclusive: &[
            ("batches", "batch_size"),
            ("batches", "serial"),
            ("batch_size", "serial"),
        ],
        lockstep: true,
    },
    ModuleSpec {
        name: "meta",
        collections: BUILTIN,
        free_form: FreeForm::Yes,
        params: &[],
        one_of: &[],
        exclusive: &[],
        lockstep: false,
    },
];

/// Find a module by its short or qualified name.
pub fn lookup(name: &str) -> Option<&'static ModuleSpec> {
    let (prefix, short) = match name.rsplit_once('.') {
        Some((p, s)) => (Some(p), s),
        None => (None, name),
    };
    MODULES
        .iter()
        .find(|m| m.name == short && prefix.is_none_or(|p| m.collections.contains(&p)))
}

/// Every name a module can be written as, for suggestions.
pub fn all_names() -> impl Iterator<Item = String> {
    MODULES.iter().flat_map(|m| {
        std::iter::once(m.name.to_string()).chain(m.collections.iter().map(move |c| format!("{c}.{}", m.name)))
    })
}

/// `meta:` actions roll carries out.
pub const META_ACTIONS: &[&str] = &["flush_handlers", "noop", "end_play", "end_host", "clear_host_errors"];
