//! The command line (clap derive). Nothing here is used past `settings`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "roll", version, about = "Ansible-style rollouts of docker web apps behind nginx, in batches.", after_help = crate::exit::HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a playbook against an inventory.
    #[command(after_help = crate::exit::HELP)]
    Play(PlayArgs),
    /// Run one module on the hosts of a pattern, as Ansible's ad-hoc `ansible` command does;
    /// the output of a long command is streamed line by line (`docker logs -f`).
    #[command(after_help = crate::exit::HELP)]
    Run(RunArgs),
    /// Show the inventory as ansible-inventory does.
    Inventory(InventoryArgs),
    /// Encrypt, decrypt and view files and strings in the ansible-vault format, as ansible-vault does.
    Vault(VaultCmd),
    /// Show where each app's switch stands on the proxies: live colour, backends, last switch.
    Status(StatusArgs),
    /// Show the deploy locks on the proxy hosts, or release one (`roll.deploy_lock`).
    Lock(LockArgs),
    /// Dry-run a playbook and save what it would change, to apply exactly that later.
    #[command(after_help = crate::exit::HELP)]
    Plan(PlanArgs),
    /// Run a saved plan, refused if the world moved since it was made.
    #[command(after_help = crate::exit::HELP)]
    Apply(ApplyArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// For people: Ansible's log layout with a PLAY RECAP (`play`), a table (`status`, `lock
    /// status`).
    #[default]
    Human,
    /// JSON Lines on stdout, one object per line: an event (`play`), an app's state on a proxy
    /// (`status`), a lock (`lock status`).
    Json,
}

/// How roll reaches hosts over SSH (shared by the subcommands that connect).
#[derive(Debug, Args)]
pub struct SshArgs {
    /// An ssh config file, passed to ssh as `-F` (otherwise ~/.ssh/config applies).
    #[arg(long, env = "ROLL_SSH_CONFIG", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// A known_hosts file to check host keys against (for CI).
    #[arg(long, env = "ROLL_KNOWN_HOSTS", value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Accept the keys of hosts not yet in known_hosts (a changed key is still refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds to wait for an ssh connection (default ANSIBLE_TIMEOUT, ansible.cfg's
    /// `timeout`, else 10).
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<u64>,
    /// Keep ssh master connections open this many seconds after the run and reuse them in the
    /// next one (like Ansible's ControlPersist); 0 closes them at the end of the run.
    #[arg(long, env = "ROLL_SSH_PERSIST", default_value_t = 0, value_name = "SECS")]
    pub ssh_persist: u64,
    /// How commands travel over a host's ssh master: a new channel per command, or one
    /// persistent remote shell per host.
    #[arg(long, env = "ROLL_SSH_TRANSPORT", value_enum, default_value_t = SshTransport::Shell)]
    pub ssh_transport: SshTransport,
    /// Words for every ssh command line, as ansible-playbook's `--ssh-common-args` (over
    /// ANSIBLE_SSH_COMMON_ARGS and ansible.cfg; a host's `ansible_ssh_common_args` wins).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub ssh_common_args: Option<String>,
    /// Words for ssh only, after the common ones, as ansible-playbook's `--ssh-extra-args`.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub ssh_extra_args: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SshTransport {
    Exec,
    Shell,
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The playbook file.
    pub playbook: PathBuf,
    /// Inventory: a file, a directory, a name under `inventories/`, or `host1,host2,`;
    /// repeated, the sources are merged in order (otherwise ANSIBLE_INVENTORY, then
    /// ansible.cfg's `inventory`).
    #[arg(short, long, env = "ROLL_INVENTORY")]
    pub inventory: Vec<String>,
    /// Only hosts matching this pattern (`app:!app01`, `proxy[0]`, `~web\d+`).
    #[arg(short, long)]
    pub limit: Option<String>,
    /// Only tasks with these tags (comma-separated or repeated).
    #[arg(short, long = "tags", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with these tags.
    #[arg(long = "skip-tags", value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Extra variables: `key=value ...`, a JSON or YAML mapping, or `@file`. Highest precedence.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// How many hosts run a task at the same time (default ANSIBLE_FORKS, ansible.cfg's
    /// `forks`, else 50).
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..))]
    pub forks: Option<u32>,
    /// Dry run: report what would change, change nothing.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// With `--check` (and `roll plan`): exit 0 when nothing would change, 2 when something
    /// would, 1 on an error (a host failed or unreachable).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Show unified diffs of changed files.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// List the hosts each play would run on, then stop.
    #[arg(long)]
    pub list_hosts: bool,
    /// List the tasks of each play, then stop.
    #[arg(long)]
    pub list_tasks: bool,
    /// List the tags used, then stop.
    #[arg(long)]
    pub list_tags: bool,
    /// Check the playbook, inventory and templates, then stop.
    #[arg(long)]
    pub syntax_check: bool,
    /// Start at the task with this name.
    #[arg(long)]
    pub start_at_task: Option<String>,
    /// Run notified handlers even on hosts that failed.
    #[arg(long)]
    pub force_handlers: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// More detail (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Seconds a command may run when its task sets no `timeout:`; then it is killed.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub command_timeout: u64,
    /// No progress bars (they show only on a terminal, and never under CI).
    #[arg(short, long)]
    pub quiet: bool,
    /// Colour in the log: `auto` (on a terminal, not under CI, unless NO_COLOR), `always`, `never`.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// Also write the run as a JUnit XML report (one testsuite per play, one testcase per task
    /// and host), for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How long to wait for another rollout's deploy lock (`roll.deploy_lock`), e.g. `10m`.
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    pub lock_wait: Option<String>,
    #[command(flatten)]
    pub vault: VaultArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The hosts to run on: a group, a host, or a pattern (`app:!app01`, `web[0:2]`).
    pub pattern: String,
    /// Inventory: a file, a directory, a name under `inventories/`, or `host1,host2,`;
    /// repeated, the sources are merged in order (otherwise ANSIBLE_INVENTORY, then
    /// ansible.cfg's `inventory`).
    #[arg(short, long, env = "ROLL_INVENTORY")]
    pub inventory: Vec<String>,
    /// The module to run.
    #[arg(short = 'm', long = "module-name", default_value = "command", value_name = "MODULE")]
    pub module: String,
    /// The module's arguments: `key=value ...`, a JSON mapping, or for `command` and `shell`
    /// the command line.
    #[arg(
        short = 'a',
        long = "args",
        default_value = "",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub args: String,
    /// Run as root (or `--become-user`) through `sudo -n`.
    #[arg(short = 'b', long = "become")]
    pub r#become: bool,
    /// The user to become with `-b`.
    #[arg(long, value_name = "USER")]
    pub become_user: Option<String>,
    /// Connect as this user where the inventory names none.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Only hosts matching this pattern, too.
    #[arg(short, long)]
    pub limit: Option<String>,
    /// Extra variables: `key=value ...`, a JSON or YAML mapping, or `@file`. Highest precedence.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// How many hosts run at the same time.
    #[arg(short, long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub forks: u32,
    /// Dry run: report what would change, change nothing.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show unified diffs of changed files.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// One line per host, as `ansible -o` prints it (no streaming).
    #[arg(short = 'o', long)]
    pub one_line: bool,
    /// Output format on stdout: Ansible's ad-hoc layout, or the JSON events of `roll play`.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Seconds a command may run before it is killed; 0 (the default): as long as it runs,
    /// until Ctrl-C.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub command_timeout: u64,
    /// Colour: `auto` (on a terminal, not under CI, unless NO_COLOR), `always`, `never`.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub vault: VaultArgs,
}

/// Where the vault passwords come from, as in ansible-playbook (shared by the subcommands that
/// read vault-encrypted files and `!vault` values). ANSIBLE_VAULT_PASSWORD_FILE adds one more.
#[derive(Debug, Args, Clone, Default)]
pub struct VaultArgs {
    /// A file whose first line is the vault password, or an executable that prints it (a
    /// `NAME-client` script is given `--vault-id LABEL`). Repeatable.
    #[arg(long = "vault-password-file", visible_alias = "vault-pass-file", value_name = "FILE")]
    pub vault_password_file: Vec<PathBuf>,
    /// A vault id and where its password is: `LABEL@FILE`, `LABEL@prompt`, or `FILE`
    /// (label `default`). Repeatable; a value's own vault id is tried first.
    #[arg(long = "vault-id", value_name = "ID")]
    pub vault_id: Vec<String>,
    /// Ask for the vault password on the terminal.
    #[arg(short = 'J', long = "ask-vault-pass", visible_alias = "ask-vault-password")]
    pub ask_vault_pass: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["list", "graph", "host"])))]
pub struct InventoryArgs {
    /// Inventory: a file, a directory, a name under `inventories/`, or `host1,host2,`;
    /// repeated, the sources are merged in order (otherwise ANSIBLE_INVENTORY, then
    /// ansible.cfg's `inventory`).
    #[arg(short, long, env = "ROLL_INVENTORY")]
    pub inventory: Vec<String>,
    /// All groups and hosts with their variables, as JSON.
    #[arg(long)]
    pub list: bool,
    /// The group tree, optionally from GROUP.
    #[arg(long, num_args = 0..=1, default_missing_value = "all", value_name = "GROUP")]
    pub graph: Option<String>,
    /// One host's variables, as JSON.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Show variables in `--graph`.
    #[arg(long)]
    pub vars: bool,
    #[command(flatten)]
    pub vault: VaultArgs,
}

/// Which proxy hosts to ask, and how (shared by `roll status` and `roll lock`).
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Inventory: a file, a directory, a name under `inventories/`, or `host1,host2,`;
    /// repeated, the sources are merged in order (otherwise ANSIBLE_INVENTORY, then
    /// ansible.cfg's `inventory`).
    #[arg(short, long, env = "ROLL_INVENTORY")]
    pub inventory: Vec<String>,
    /// The proxy hosts to ask.
    #[arg(long, default_value = "proxy", value_name = "PATTERN")]
    pub hosts: String,
    /// Where the switch keeps its state and locks (a host's `roll_state_dir` variable wins).
    #[arg(long, default_value = "/var/lib/roll", value_name = "DIR")]
    pub state_dir: String,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    #[command(flatten)]
    pub ssh: SshArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub proxies: ProxyArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LockAction {
    /// Who holds each app's lock, since when, until when.
    Status,
    /// Remove an app's lock, whoever holds it (recorded in the audit log).
    Release,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[arg(value_enum)]
    pub action: LockAction,
    /// The app whose lock to release (`status` shows every app).
    #[arg(long)]
    pub app: Option<String>,
    #[command(flatten)]
    pub proxies: ProxyArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub play: PlayArgs,
    /// Where to save the plan (JSON).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan saved by `roll plan -o FILE`.
    pub plan: PathBuf,
    /// Also write the run as a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How long to wait for another rollout's deploy lock.
    #[arg(long, value_name = "DURATION", value_parser = duration_text)]
    pub lock_wait: Option<String>,
}

/// A duration as `clock::parse_duration` reads it, kept as written (it is passed on as the
/// `roll_lock_wait` variable): `5x` is refused here, with the format, not at the lock.
fn duration_text(s: &str) -> Result<String, String> {
    crate::clock::parse_duration(s).map(|_| s.to_string())
}

#[derive(Debug, Args)]
pub struct VaultCmd {
    #[command(subcommand)]
    pub action: VaultAction,
}

/// The options every `roll vault` action shares.
#[derive(Debug, Args)]
pub struct VaultCommon {
    #[command(flatten)]
    pub vault: VaultArgs,
    /// The vault id to encrypt with (one of those given with `--vault-id`).
    #[arg(long, value_name = "LABEL")]
    pub encrypt_vault_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum VaultAction {
    /// Encrypt files in place (`-` or no file: standard input to standard output).
    Encrypt {
        #[command(flatten)]
        common: VaultCommon,
        /// Write the result here instead of in place (`-`: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Decrypt files in place (`-` or no file: standard input to standard output).
    Decrypt {
        #[command(flatten)]
        common: VaultCommon,
        /// Write the result here instead of in place (`-`: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Print the plaintext of encrypted files.
    View {
        #[command(flatten)]
        common: VaultCommon,
        files: Vec<PathBuf>,
    },
    /// Encrypt a string into a `!vault` value for a YAML file.
    #[command(name = "encrypt_string", alias = "encrypt-string")]
    EncryptString {
        #[command(flatten)]
        common: VaultCommon,
        /// The variable name to print the value under (`name: !vault |`); repeatable, one per string.
        #[arg(short = 'n', long = "name", value_name = "NAME")]
        name: Vec<String>,
        /// Read the string from standard input (`-` as the string does the same).
        #[arg(long)]
        stdin_name: Option<String>,
        /// The strings to encrypt (none: read standard input).
        strings: Vec<String>,
    },
}
