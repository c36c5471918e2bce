//! How a module describes itself: its names (short and Ansible-qualified), parameters with their
//! aliases, choices and kinds, which are required or exclusive, and its capabilities. The parser,
//! checker and scheduler ask these; they never compare module names.

/// How a module accepts a bare string (`command: ls -l`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeForm {
    /// `key=value` pairs only (`file: path=/x state=touch`).
    No,
    /// The string is the module's main argument (`command`, `shell`).
    Yes,
}

/// What a parameter's value is, for the checker and the renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A value, rendered for the host before the module sees it.
    Value,
    /// A Jinja expression the module evaluates itself (`assert: that:`): passed unrendered,
    /// checked as an expression.
    Expression,
    /// A variable name or expression (`debug: var:`): rendered, then evaluated by the module;
    /// checked as an expression.
    Variable,
    /// A template on the controller (`template: src:`), rendered with the host's variables:
    /// found and checked before the run.
    TemplateFile,
    /// A template on the controller that the module renders itself, with variables of its own
    /// on top of the host's (`roll.nginx_switch: template:` gets `backends` and `app`): found and
    /// checked before the run, with `provides` known as defined in it.
    ModuleTemplate { provides: &'static [&'static str] },
    /// A file or directory on the controller (`copy: src:`): must exist before the run, unless
    /// the task's `remote_src` puts it on the host.
    ControllerFile,
    /// A Python regular expression (`lineinfile: regexp:`): a literal one must compile before
    /// the run.
    Regex,
    /// Values whose templates the module renders itself, once for each other host it acts on,
    /// with that host's variables and `provides` of its own on top (`roll.nginx_switch:
    /// retire: { container: "{{ container_prefix }}-{{ old_colour }}" }`, for each backend):
    /// passed unrendered, checked with `provides` known as defined.
    PerHost { provides: &'static [&'static str] },
    /// A variables file or directory on the controller whose variables the module defines
    /// (`include_vars`): a literal one is read by the checker for the names it defines.
    VarsFile,
    /// The name of the one variable the module defines (`include_vars: name:`).
    DefinesVariable,
}

impl ParamKind {
    /// For a template file on the controller, the names it may use besides the host's
    /// variables; `None` for every other kind.
    pub fn template_names(self) -> Option<&'static [&'static str]> {
        match self {
            ParamKind::TemplateFile => Some(&[]),
            ParamKind::ModuleTemplate { provides } => Some(provides),
            _ => None,
        }
    }

    /// The names a value the module renders itself may use besides the host's variables
    /// (`PerHost`); `None` for every other kind.
    pub fn per_host_names(self) -> Option<&'static [&'static str]> {
        match self {
            ParamKind::PerHost { provides } => Some(provides),
            _ => None,
        }
    }
}

/// What a module can do that the scheduler, parser or checker must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Its parameters are the names of variables it sets on the host (`set_fact`): any valid
    /// variable name is a parameter, and the checker knows them as defined.
    SetsFacts,
    /// Its `ansible_facts` are the host's facts (`setup`): the scheduler merges them into
    /// `ansible_facts` and injects them as `ansible_X`; the checker knows the fact names.
    GathersFacts,
    /// In check mode it reports that it would run instead of running (`command`, `shell`).
    WouldRunInCheck,
    /// The task's hosts step through its batches together (`modules::lockstep`): they all run
    /// at once, outside `--forks`.
    Lockstep,
    /// It runs on the controller and never uses the host's connection (`debug`, `assert`).
    Controller,
    /// It writes files on the controller wherever its task runs (`fetch`): a later task's
    /// controller source may exist only once it has run, so the checker leaves a missing one
    /// to that task.
    WritesController,
    /// The variables it returns are included vars (`include_vars`): below `set_fact` and
    /// registered results, above task vars.
    IncludesVars,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub choices: &'static [&'static str],
    pub required: bool,
    pub kind: ParamKind,
}

impl Param {
    pub const fn new(name: &'static str) -> Param {
        Param {
            name,
            aliases: &[],
            choices: &[],
            required: false,
            kind: ParamKind::Value,
        }
    }

    pub const fn required(self) -> Param {
        Param { required: true, ..self }
    }

    pub const fn aliases(self, aliases: &'static [&'static str]) -> Param {
        Param { aliases, ..self }
    }

    pub const fn choices(self, choices: &'static [&'static str]) -> Param {
        Param { choices, ..self }
    }

    pub const fn kind(self, kind: ParamKind) -> Param {
        Param { kind, ..self }
    }
}

/// An optional parameter.
pub const fn p(name: &'static str) -> Param {
    Param::new(name)
}

/// A required parameter.
pub const fn req(name: &'static str) -> Param {
    Param::new(name).required()
}

/// Collections whose prefix names Ansible's builtin modules (`ansible.builtin.command`).
pub const BUILTIN: &[&str] = &["ansible.builtin", "ansible.legacy"];
/// community.docker's modules.
pub const DOCKER: &[&str] = &["community.docker"];
/// community.mysql's modules (`community.mysql.mysql_db`).
pub const MYSQL: &[&str] = &["community.mysql"];
/// community.general's modules (`community.general.haproxy`).
pub const GENERAL: &[&str] = &["community.general"];

/// The `module_defaults` groups (`group/NAME`) roll knows: the qualified name, its short
/// alias in ansible-core's builtin runtime, and the collection whose modules it holds.
pub const ACTION_GROUPS: &[(&str, &str, &str)] = &[("community.docker.docker", "docker", "community.docker")];

/// The group `group/NAME` names (short or qualified).
pub fn action_group(name: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    ACTION_GROUPS.iter().find(|g| g.0 == name || g.1 == name)
}

/// Whether a module is in the group whose qualified name is `group`.
pub fn in_group(spec: &ModuleSpec, group: &str) -> bool {
    ACTION_GROUPS
        .iter()
        .any(|g| g.0 == group && spec.collections.contains(&g.2))
}
/// roll's own modules (`roll.nginx_switch`).
pub const ROLL: &[&str] = &["roll"];

#[derive(Debug)]
pub struct ModuleSpec {
    pub name: &'static str,
    /// Collections whose prefix names this module too (`ansible.builtin.command`).
    pub collections: &'static [&'static str],
    pub free_form: FreeForm,
    /// What the free-form string is, checked as a parameter of this kind.
    pub free_form_kind: ParamKind,
    pub params: &'static [Param],
    /// At least one of these must be given (besides a free-form string).
    pub one_of: &'static [&'static str],
    /// Pairs that cannot be given together.
    pub exclusive: &'static [(&'static str, &'static str)],
    /// Pairs `(a, b)`: `a` given needs `b` given too (Ansible's `required_by`).
    pub required_by: &'static [(&'static str, &'static str)],
    pub capabilities: &'static [Capability],
    /// The facts it always sets on the host (`roll.bluegreen_facts` sets `bluegreen`): the
    /// checker knows them as defined in later tasks.
    pub facts: &'static [&'static str],
    /// What Ansible's module of this name takes and roll does not yet: a parameter
    /// (`upgrade`) or one value of one (`state=build-dep`). Refused as such, not as a typo.
    pub not_yet: &'static [&'static str],
}

impl ModuleSpec {
    /// A module with no parameters yet, taking `key=value` strings; fill in the rest with
    /// struct update syntax.
    pub const fn new(name: &'static str, collections: &'static [&'static str]) -> ModuleSpec {
        ModuleSpec {
            name,
            collections,
            free_form: FreeForm::No,
            free_form_kind: ParamKind::Value,
            params: &[],
            one_of: &[],
            exclusive: &[],
            required_by: &[],
            capabilities: &[],
            facts: &[],
            not_yet: &[],
        }
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name || p.aliases.contains(&name))
    }

    pub fn param_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.params
            .iter()
            .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()))
    }

    /// Whether `name` (`upgrade`, or `state=build-dep` for a value) is in [`Self::not_yet`].
    pub fn not_yet(&self, name: &str) -> bool {
        self.not_yet.contains(&name)
    }

    pub fn has(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }

    /// The kind of a parameter given under `name` (an alias too); unknown ones are values.
    pub fn kind_of(&self, name: &str) -> ParamKind {
        self.param(name).map_or(ParamKind::Value, |p| p.kind)
    }

    /// Whether `name` (short, or with one of the module's collections) names this module.
    /// ansible-core's builtin routing redirects the old short names of community.docker's,
    /// community.general's and community.mysql's modules (`docker_container`, `haproxy`) to their collections, so
    /// `ansible.builtin.haproxy` and `ansible.legacy.haproxy` name them too.
    pub fn is_named(&self, name: &str) -> bool {
        match name.rsplit_once('.') {
            Some((prefix, short)) => {
                short == self.name
                    && (self.collections.contains(&prefix)
                        || (BUILTIN.contains(&prefix) && [DOCKER, GENERAL, MYSQL].contains(&self.collections)))
            }
            None => name == self.name,
        }
    }
}
