//! `mysql_db` and `mysql_user` (community.mysql): databases and accounts of a MySQL or MariaDB
//! server, read and changed with the `mariadb`/`mysql` command-line client on the host (roll runs
//! no Python there), with community.mysql's parameters, decisions, messages and return values.
//! Credentials never reach a command line: the client reads them from a defaults file of mode
//! 0600 that the host's shell writes from standard input, and the SQL (which can hold an account's
//! password) comes on standard input too.

use super::spec::{MYSQL, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::connection::Command;
use crate::shell::quote;
use crate::values::value_to_string;
use indexmap::IndexMap;
use minijinja::Value;
use minijinja::value::ValueKind;

pub struct MysqlDb;
pub struct MysqlUser;

static MYSQL_DB: ModuleSpec = ModuleSpec {
    params: &[
        req("name").aliases(&["db"]),
        // `dump` and `import` are not built yet: the checker refuses them before any host.
        p("state").choices(&["present", "absent"]),
        p("encoding"),
        p("collation"),
        p("check_implicit_admin"),
        p("login_user"),
        p("login_password"),
        p("login_host"),
        p("login_port"),
        p("login_unix_socket"),
        p("config_file"),
        p("connect_timeout"),
    ],
    ..ModuleSpec::new("mysql_db", MYSQL)
};

static MYSQL_USER: ModuleSpec = ModuleSpec {
    params: &[
        req("name").aliases(&["user"]),
        p("password"),
        p("encrypted"),
        p("host"),
        p("host_all"),
        p("state").choices(&["present", "absent"]),
        p("priv"),
        p("append_privs"),
        p("update_password").choices(&["always", "on_create"]),
        p("column_case_sensitive"),
        p("check_implicit_admin"),
        p("login_user"),
        p("login_password"),
        p("login_host"),
        p("login_port"),
        p("login_unix_socket"),
        p("config_file"),
        p("connect_timeout"),
    ],
    ..ModuleSpec::new("mysql_user", MYSQL)
};

impl Module for MysqlDb {
    fn spec(&self) -> &'static ModuleSpec {
        &MYSQL_DB
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_db(args, ctx))
    }
}

impl Module for MysqlUser {
    fn spec(&self) -> &'static ModuleSpec {
        &MYSQL_USER
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check_user(args, ctx))
    }
}

/// How to reach the server, as community.mysql's common parameters say.
#[derive(Debug, Clone)]
struct Login {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: u16,
    socket: Option<String>,
    config_file: String,
    connect_timeout: u64,
    implicit_admin: bool,
}

fn login(args: &Args, ctx: &Ctx<'_>) -> Result<Login, Failure> {
    let password = args.str("login_password")?;
    if let Some(pw) = &password {
        ctx.run.secrets.add(pw);
    }
    let port = match args.f64("login_port")? {
        None => 3306,
        Some(n) if (0.0..=65535.0).contains(&n) && n.fract() == 0.0 => n as u16,
        Some(_) => return Err("login_port must be a valid unix port number (0-65535)".into()),
    };
    let connect_timeout = match args.f64("connect_timeout")? {
        None => 30,
        Some(n) if n >= 0.0 => n as u64,
        Some(n) => return Err(format!("`connect_timeout` must be a number of seconds, got {n}").into()),
    };
    Ok(Login {
        user: args.str("login_user")?,
        password,
        host: args.str("login_host")?.unwrap_or_else(|| "localhost".into()),
        port,
        socket: args.str("login_unix_socket")?.filter(|s| !s.is_empty()),
        config_file: args.str("config_file")?.unwrap_or_else(|| "~/.my.cnf".into()),
        connect_timeout,
        implicit_admin: args.bool("check_implicit_admin", false)?,
    })
}

/// A value in a client option file: quoted, with the escapes the option-file reader undoes.
fn option_value(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Login {
    /// The `[client]` lines of a defaults file for `user`/`password` (PyMySQL's keyword
    /// arguments: what is given wins over the config file, what is not comes from it).
    fn client_lines(&self, user: Option<&str>, password: Option<&str>) -> Vec<String> {
        let mut l = vec!["[client]".to_string()];
        if let Some(u) = user {
            l.push(format!("user={}", option_value(u)));
        }
        if let Some(pw) = password {
            l.push(format!("password={}", option_value(pw)));
        }
        match &self.socket {
            Some(s) => {
                l.push(format!("socket={}", option_value(s)));
                l.push("protocol=SOCKET".into());
            }
            // PyMySQL takes the config file's `socket` when no `login_unix_socket` is given, and
            // otherwise reaches `localhost` over TCP; the client, told nothing, uses that socket
            // or its default one for `localhost`, which reaches the same local server (and lets
            // root's unix_socket login work, as it cannot over TCP).
            None => {
                l.push(format!("host={}", option_value(&self.host)));
                l.push(format!("port={}", self.port));
                if self.host != "localhost" {
                    l.push("protocol=TCP".into());
                }
            }
        }
        l.push(format!("connect-timeout={}", self.connect_timeout));
        l
    }
}

/// What one client run printed: its batch rows by the marker (`SELECT 'roll:NAME'`) above them.
#[derive(Debug, Default)]
struct Rows {
    config_exists: bool,
    sections: IndexMap<String, Vec<Vec<String>>>,
}

impl Rows {
    fn get(&self, name: &str) -> &[Vec<String>] {
        self.sections.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    fn first(&self, name: &str) -> String {
        self.get(name)
            .first()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or_default()
    }
}

/// A field of the client's batch output (`-B`), its escapes undone.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn parse_rows(text: &str) -> Rows {
    let mut rows = Rows::default();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("roll-config:") {
            rows.config_exists = v == "yes";
        } else if let Some(name) = line.strip_prefix("roll:") {
            current = name.to_string();
            rows.sections.entry(current.clone()).or_default();
        } else {
            rows.sections
                .entry(current.clone())
                .or_default()
                .push(line.split('\t').map(unescape).collect());
        }
    }
    rows
}

/// A failed client run: not connected at all, or a statement refused.
enum SqlError {
    Connect { message: String, config_exists: bool },
    Statement(String),
}

/// Run `sql` with the client on the host. The shell there writes the defaults files (mode 0600,
/// in a directory of its own, removed at exit) from the first lines of standard input; the
/// client reads the rest as its statements.
async fn run_sql(ctx: &Ctx<'_>, login: &Login, sql: &str) -> Result<Result<Rows, SqlError>, Failure> {
    let given = login.client_lines(login.user.as_deref(), login.password.as_deref());
    let admin = if login.implicit_admin {
        login.client_lines(Some("root"), Some(""))
    } else {
        Vec::new()
    };
    let mut stdin = String::new();
    for lines in [&given, &admin] {
        stdin.push_str(&format!("{}\n", lines.len()));
        for l in lines.iter() {
            stdin.push_str(l);
            stdin.push('\n');
        }
    }
    stdin.push_str(sql);
    stdin.push('\n');
    let script = format!(
        r#"client=$(command -v mariadb || command -v mysql) || exit 127
umask 077
d=$(mktemp -d) || exit 126
trap 'rm -rf "$d"' EXIT
cfg={cfg}
case $cfg in "~/"*) cfg="$HOME/${{cfg#??}}" ;; "~") cfg=$HOME ;; esac
for f in login admin; do
  : > "$d/$f.cnf"
  if [ -f "$cfg" ]; then printf '!include %s\n' "$cfg" >> "$d/$f.cnf"; fi
  IFS= read -r n || exit 125
  i=0
  while [ "$i" -lt "$n" ]; do IFS= read -r l; printf '%s\n' "$l" >> "$d/$f.cnf"; i=$((i+1)); done
  [ "$n" -gt 0 ] || rm -f "$d/$f.cnf"
done
if [ -f "$cfg" ]; then echo roll-config:yes; else echo roll-config:no; fi
use="$d/login.cnf"
if [ -f "$d/admin.cnf" ] && "$client" --defaults-file="$d/admin.cnf" -N -B -e 'SELECT 1' </dev/null >/dev/null 2>&1; then
  use="$d/admin.cnf"
fi
"$client" --defaults-file="$use" -N -B
"#,
        cfg = quote(&login.config_file)
    );
    let mut cmd = Command::new(script);
    cmd.stdin = Some(stdin.into_bytes());
    cmd.env = ctx.env.clone();
    cmd.become_user = ctx.become_user.clone();
    cmd.timeout = ctx.timeout;
    let out = ctx.conn.exec(&cmd).await?;
    let rows = parse_rows(&out.stdout_text());
    let stderr = out.stderr_text().trim().to_string();
    Ok(match out.rc {
        0 => Ok(rows),
        127 => {
            return Err(
                "neither `mariadb` nor `mysql` (the MariaDB/MySQL command-line client) is on the host's PATH: \
                 roll's mysql modules run it there (install the package `mariadb-client` or `default-mysql-client`)"
                    .into(),
            );
        }
        125 | 126 => return Err(format!("cannot write the client's defaults file on the host: {stderr}").into()),
        // The client names the line of a statement it refused; a failed connection has none.
        _ if stderr.contains(") at line ") => Err(SqlError::Statement(stderr)),
        _ => Err(SqlError::Connect {
            message: stderr,
            config_exists: rows.config_exists,
        }),
    })
}

/// A string literal as PyMySQL escapes it.
fn lit(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// community.mysql's `mysql_quote_identifier(name, 'database')`: backquoted, a backquote doubled.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn strings(v: &[String]) -> Value {
    Value::from(v.iter().map(|s| Value::from(s.as_str())).collect::<Vec<_>>())
}

// ---- mysql_db ----

struct DbRun {
    login: Login,
    statements: Vec<String>,
    result: ModuleResult,
    deleting: bool,
}

apply_by!(DbRun, apply_db);

async fn check_db(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let names: Vec<String> = args
        .list("name")
        .unwrap_or_default()
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    if state != "present" && state != "absent" {
        return Err(format!("roll's mysql_db does not do `state: {state}` yet: only `present` and `absent`").into());
    }
    let encoding = args.str("encoding")?.unwrap_or_default();
    let collation = args.str("collation")?.unwrap_or_default();
    let login = login(args, ctx)?;
    let joined = names.join(" ");
    let base = ModuleResult::ok()
        .with("db", joined.as_str())
        .with("db_list", strings(&names));
    if names.is_empty() {
        return Ok(Plan::Unchanged(
            ModuleResult::ok()
                .with("db", strings(&[]))
                .with("db_list", strings(&[])),
        ));
    }
    if names == ["all"] {
        return Err("name is not allowed to equal 'all' unless state equals import, or dump.".into());
    }
    let mut sql = String::new();
    for (i, n) in names.iter().enumerate() {
        sql.push_str(&format!(
            "SELECT 'roll:db{i}'; SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};\n",
            lit(n)
        ));
    }
    let rows = match run_sql(ctx, &login, &sql).await? {
        Ok(r) => r,
        Err(e) => return Err(db_error(e, &login, "").into()),
    };
    let exists = |i: usize| !rows.get(&format!("db{i}")).is_empty();
    let (todo, deleting): (Vec<&String>, bool) = if state == "absent" {
        (
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| exists(*i))
                .map(|(_, n)| n)
                .collect(),
            true,
        )
    } else {
        (
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| !exists(*i))
                .map(|(_, n)| n)
                .collect(),
            false,
        )
    };
    if todo.is_empty() {
        // community.mysql returns `executed_commands` only when not in check mode.
        if ctx.check_mode {
            return Ok(Plan::Unchanged(base));
        }
        return Ok(Plan::Unchanged(base.with("executed_commands", strings(&[]))));
    }
    let statements: Vec<String> = todo
        .iter()
        .map(|n| {
            if deleting {
                format!("DROP DATABASE {}", ident(n))
            } else {
                let mut q = format!("CREATE DATABASE {}", ident(n));
                if !encoding.is_empty() {
                    q.push_str(&format!(" CHARACTER SET {}", lit(&encoding)));
                }
                if !collation.is_empty() {
                    q.push_str(&format!(" COLLATE {}", lit(&collation)));
                }
                q
            }
        })
        .collect();
    let mut preview = base;
    preview.changed = true;
    Ok(Plan::Change {
        preview: preview.clone(),
        action: Box::new(DbRun {
            login,
            statements,
            result: preview,
            deleting,
        }),
    })
}

fn db_error(e: SqlError, login: &Login, doing: &str) -> String {
    match e {
        SqlError::Connect {
            message,
            config_exists: true,
        } => format!(
            "unable to connect to database, check login_user and login_password are correct or {} has the credentials. \
             Exception message: {message}",
            login.config_file
        ),
        SqlError::Connect { message, .. } => {
            format!("unable to find {}. Exception message: {message}", login.config_file)
        }
        SqlError::Statement(m) => format!("{doing}{m}"),
    }
}

async fn apply_db(run: DbRun, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let sql: String = run.statements.iter().map(|s| format!("{s};\n")).collect();
    if let Err(e) = run_sql(ctx, &run.login, &sql).await? {
        let doing = if run.deleting {
            "error deleting database: "
        } else {
            "error creating database: "
        };
        return Err(db_error(e, &run.login, doing).into());
    }
    Ok(run.result.with("executed_commands", strings(&run.statements)))
}

// ---- mysql_user ----

const CASE_WARNING: &str = "Option column_case_sensitive is not provided. The default is now false, so the column's \
                            name will be uppercased. The default will be changed to true in community.mysql 4.0.0.";

/// Privileges by `db.table`, in the order given or granted, as community.mysql holds them.
type Privs = IndexMap<String, Vec<String>>;

/// `privileges_unpack`: `db.*:SELECT,INSERT/db2.tbl:ALL` (the `*.*: USAGE` every account has
/// added), names quoted as the server's SHOW GRANTS quotes them.
fn privileges_unpack(priv_s: &str, ansi: bool, case_sensitive: bool) -> Result<Privs, String> {
    let quote = if ansi { '"' } else { '`' };
    let mut out = Privs::new();
    for item in priv_s.trim().split('/') {
        let item = item.trim();
        let Some((target, privs)) = item.rsplit_once(':') else {
            return Err(format!(
                "invalid privileges string `{item}`: write `db.table:PRIV,PRIV` (several joined by `/`)"
            ));
        };
        let (object_type, target) = match target.split_once(' ') {
            Some((t @ ("FUNCTION" | "PROCEDURE"), rest)) => (format!("{t} "), rest),
            _ => (String::new(), target),
        };
        let sides: Vec<String> = match target.rsplit_once('.') {
            Some((a, b)) => vec![a.to_string(), b.to_string()],
            None => vec![target.to_string()],
        };
        let sides: Vec<String> = sides
            .into_iter()
            .map(|s| {
                let bare = s.trim_matches('`');
                if bare == "*" {
                    s
                } else {
                    format!("{quote}{bare}{quote}")
                }
            })
            .collect();
        let key = format!("{object_type}{}", sides.join("."));
        let privs = if privs.contains('(') && case_sensitive {
            privs.to_string()
        } else {
            privs.to_uppercase()
        };
        out.insert(key, privs.split(',').map(str::to_string).collect());
    }
    if !out.contains_key("*.*") {
        out.insert("*.*".into(), vec!["USAGE".into()]);
    }
    Ok(out)
}

/// `privileges_get`: the account's SHOW GRANTS lines, `ALL PRIVILEGES` read as `ALL` and `WITH
/// GRANT OPTION` as `GRANT`; role grants (no `ON`) are left to mysql_role.
fn privileges_get(lines: &[Vec<String>]) -> Result<Privs, String> {
    let mut out = Privs::new();
    for row in lines {
        let line = row.first().map(String::as_str).unwrap_or_default();
        let Some(rest) = line.strip_prefix("GRANT ") else {
            if line.starts_with("SET DEFAULT ROLE ") {
                continue;
            }
            return Err(format!("unable to parse the MySQL grant string: {line}"));
        };
        let Some((privs, rest)) = rest.split_once(" ON ") else {
            continue;
        };
        let to = [" TO `", " TO '", " TO \""]
            .iter()
            .filter_map(|t| rest.rfind(t))
            .max()
            .ok_or_else(|| format!("unable to parse the MySQL grant string: {line}"))?;
        let (target, tail) = rest.split_at(to);
        let mut list: Vec<String> = privs
            .split(',')
            .map(|p| match p.trim() {
                "ALL PRIVILEGES" => "ALL".to_string(),
                o => o.to_string(),
            })
            .collect();
        if tail.contains("WITH GRANT OPTION") {
            list.push("GRANT".into());
        }
        out.entry(target.to_string()).or_default().extend(list);
    }
    Ok(out)
}

/// The server's `mysql_native_password` hash of a password: `*` and SHA1(SHA1(pw)) in capitals.
fn native_hash(password: &str) -> String {
    use sha1::Digest as _;
    let inner = sha1::Sha1::digest(password.as_bytes());
    let outer = sha1::Sha1::digest(inner);
    let hex: String = outer.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

fn is_hash(s: &str) -> bool {
    s.len() == 41 && s.starts_with('*') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// A Python list of strings as `str()` prints it (in messages).
fn py_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", items.join(", "))
}

/// What the server is: MariaDB or MySQL, and its version's numbers.
struct Server {
    mariadb: bool,
    version: Vec<u64>,
}

impl Server {
    fn read(version: &str) -> Server {
        let nums = version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .filter_map(|n| n.parse().ok())
            .collect();
        Server {
            mariadb: version.to_lowercase().contains("mariadb"),
            version: nums,
        }
    }

    fn below(&self, v: &[u64]) -> bool {
        self.version.as_slice() < v
    }

    /// `use_old_user_mgmt`: MariaDB before 10.2, MySQL before 5.7.
    fn old_user_mgmt(&self) -> bool {
        if self.mariadb {
            self.below(&[10, 2])
        } else {
            self.below(&[5, 7])
        }
    }

    /// Whether INFORMATION_SCHEMA.USER_ATTRIBUTES exists (MySQL 8.0.21 and later).
    fn attributes(&self) -> bool {
        !self.mariadb && !self.below(&[8, 0, 21])
    }
}

struct UserRun {
    login: Login,
    statements: Vec<String>,
    result: ModuleResult,
}

apply_by!(UserRun, apply_user);

async fn apply_user(run: UserRun, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let sql: String = run.statements.iter().map(|s| format!("{s};\n")).collect();
    match run_sql(ctx, &run.login, &sql).await? {
        Ok(_) => Ok(run.result),
        Err(e) => Err(user_error(e, &run.login).into()),
    }
}

fn user_error(e: SqlError, login: &Login) -> String {
    match e {
        SqlError::Connect { message, .. } => format!(
            "unable to connect to database, check login_user and login_password are correct or {} has the credentials. \
             Exception message: {message}",
            login.config_file
        ),
        SqlError::Statement(m) => m,
    }
}

async fn query(ctx: &Ctx<'_>, login: &Login, sql: &str) -> Result<Rows, Failure> {
    run_sql(ctx, login, sql)
        .await?
        .map_err(|e| Failure::from(user_error(e, login)))
}

async fn check_user(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let user = args.req_str("name")?;
    let password = args.str("password")?;
    if let Some(pw) = &password {
        ctx.run.secrets.add(pw);
    }
    let encrypted = args.bool("encrypted", false)?;
    let host = args.str("host")?.unwrap_or_else(|| "localhost".into()).to_lowercase();
    let host_all = args.bool("host_all", false)?;
    let state = args.str("state")?.unwrap_or_else(|| "present".into());
    let append_privs = args.bool("append_privs", false)?;
    let update_password = args.str("update_password")?.unwrap_or_else(|| "always".into());
    if update_password != "always" && update_password != "on_create" {
        return Err(format!(
            "roll's mysql_user does not do `update_password: {update_password}` yet: use `always` or `on_create`"
        )
        .into());
    }
    let case_sensitive = match args.get("column_case_sensitive") {
        None => None,
        Some(_) => Some(args.bool("column_case_sensitive", false)?),
    };
    let priv_s = match args.get("priv") {
        None => None,
        Some(v) if v.kind() == ValueKind::Map => {
            let mut parts = Vec::new();
            for k in v.try_iter().into_iter().flatten() {
                let val = v.get_item(&k).unwrap_or_default();
                parts.push(format!("{}:{}", value_to_string(&k), value_to_string(&val)));
            }
            Some(parts.join("/"))
        }
        Some(v) if matches!(v.kind(), ValueKind::String | ValueKind::Number) => Some(value_to_string(v)),
        Some(v) => return Err(format!("priv parameter must be str or dict but {} was passed", v.kind()).into()),
    };
    let login = login(args, ctx)?;

    let who = |h: &str| format!("{}@{}", lit(&user), lit(h));
    let exists_sql = if host_all {
        format!("SELECT count(*) FROM mysql.user WHERE user = {}", lit(&user))
    } else {
        format!(
            "SELECT count(*) FROM mysql.user WHERE user = {} AND host = {}",
            lit(&user),
            lit(&host)
        )
    };
    let rows = query(
        ctx,
        &login,
        &format!(
            "SELECT 'roll:version'; SELECT VERSION(); SELECT 'roll:mode'; SELECT @@sql_mode;\n\
             SELECT 'roll:exists'; {exists_sql};\n\
             SELECT 'roll:hosts'; SELECT Host FROM mysql.user WHERE user = {};\n\
             SELECT 'roll:columns'; SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' \
             AND TABLE_NAME = 'user' AND COLUMN_NAME IN ('Password', 'authentication_string') ORDER BY COLUMN_NAME DESC;",
            lit(&user)
        ),
    )
    .await?;
    let server = Server::read(&rows.first("version"));
    let ansi = rows.first("mode").contains("ANSI");
    let exists = rows.first("exists").parse::<u64>().unwrap_or(0) > 0;
    let mut r = ModuleResult::ok().with("user", user.as_str());
    if case_sensitive.is_none() {
        r = r.with("warnings", Value::from(vec![Value::from(CASE_WARNING)]));
    }
    let new_priv = match &priv_s {
        Some(s) => Some(privileges_unpack(s, ansi, case_sensitive.unwrap_or(false))?),
        None => None,
    };

    if state == "absent" {
        r = r.with("password_changed", false).with("attributes", Value::from(()));
        if !exists {
            return Ok(Plan::Unchanged(r.with_msg("User doesn't exist")));
        }
        let hosts: Vec<String> = if host_all {
            rows.get("hosts").iter().filter_map(|h| h.first().cloned()).collect()
        } else {
            vec![host.clone()]
        };
        let statements = hosts
            .iter()
            .map(|h| format!("DROP USER IF EXISTS {}", who(h)))
            .collect();
        return Ok(change(r.with_msg("User deleted"), r_changed_same, login, statements));
    }

    let hash = match (&password, encrypted) {
        (Some(pw), true) if !pw.is_empty() => {
            if !is_hash(pw) {
                return Err(
                    "encrypted was specified however it does not appear to be a valid hash expecting: *SHA1(SHA1(your_password))"
                        .into(),
                );
            }
            Some(pw.clone())
        }
        (Some(pw), false) if !pw.is_empty() => Some(native_hash(pw)),
        _ => None,
    };

    if !exists {
        if host_all {
            return Err("host_all parameter cannot be used when adding a user".into());
        }
        // `user_add`, with MariaDB 10.2+/MySQL 5.7+ account management.
        let mut statements = vec![match (&hash, server.old_user_mgmt()) {
            (None, _) => format!("CREATE USER {}", who(&host)),
            (Some(_), _) if encrypted => format!(
                "CREATE USER {} IDENTIFIED {} {}",
                who(&host),
                if server.mariadb || server.below(&[8]) {
                    "BY PASSWORD"
                } else {
                    "WITH mysql_native_password AS"
                },
                lit(hash.as_deref().unwrap_or_default())
            ),
            (Some(_), true) => format!(
                "CREATE USER {} IDENTIFIED BY {}",
                who(&host),
                lit(password.as_deref().unwrap_or_default())
            ),
            (Some(h), false) => format!(
                "CREATE USER {} IDENTIFIED WITH mysql_native_password AS {}",
                who(&host),
                lit(h)
            ),
        }];
        for (target, privs) in new_priv.iter().flatten() {
            statements.push(grant(target, privs, &who(&host)));
        }
        let preview = r
            .clone()
            .with_msg("User added")
            .with("password_changed", Value::from(()))
            .with("attributes", Value::from(()));
        let done = r
            .with_msg("User added")
            .with("password_changed", true)
            .with("attributes", Value::from(()));
        return Ok(change(preview, |_| done, login, statements));
    }

    // `user_mod`, for each of the account's hosts (`host_all`) or the one named.
    let hosts: Vec<String> = if host_all {
        rows.get("hosts").iter().filter_map(|h| h.first().cloned()).collect()
    } else {
        vec![host.clone()]
    };
    let columns: Vec<String> = rows.get("columns").iter().filter_map(|c| c.first().cloned()).collect();
    let hash_expr = columns
        .iter()
        .map(|c| format!("CASE WHEN {c} = '' THEN NULL ELSE {c} END"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut msg = "User unchanged".to_string();
    let mut done_msg: Option<String> = None;
    let mut password_changed = false;
    let mut statements: Vec<String> = Vec::new();
    for h in &hosts {
        let mut sql = format!(
            "SELECT 'roll:tls'; SELECT ssl_type FROM mysql.user WHERE User = {} AND Host = {};\n",
            lit(&user),
            lit(h)
        );
        if hash.is_some() && update_password == "always" && !columns.is_empty() {
            sql.push_str(&format!(
                "SELECT 'roll:hash'; SELECT COALESCE({hash_expr}) FROM mysql.user WHERE user = {} AND host = {};\n",
                lit(&user),
                lit(h)
            ));
        }
        if new_priv.is_some() {
            sql.push_str(&format!("SELECT 'roll:grants'; SHOW GRANTS FOR {};\n", who(h)));
        }
        let got = query(ctx, &login, &sql).await?;
        if let Some(want) = hash.as_ref().filter(|_| update_password == "always") {
            let current = got.first("hash");
            if current != *want {
                password_changed = true;
                msg = "Password updated".into();
                if server.old_user_mgmt() {
                    statements.push(format!("SET PASSWORD FOR {} = {}", who(h), lit(want)));
                    done_msg = Some("Password updated (old style)".into());
                } else {
                    statements.push(format!(
                        "ALTER USER {} IDENTIFIED WITH mysql_native_password AS {}",
                        who(h),
                        lit(want)
                    ));
                    done_msg = Some("Password updated (new style)".into());
                }
            }
        }
        if let Some(new_priv) = &new_priv {
            let curr = privileges_get(got.get("grants"))?;
            let before = statements.len();
            if let Some(m) = plan_privileges(&user, &who(h), &curr, new_priv, append_privs, &mut statements) {
                msg = m;
                done_msg = None;
            }
            if statements.len() > before && msg == "User unchanged" {
                msg = "Privileges updated".into();
            }
        }
        let ssl = got.first("tls");
        if !ssl.is_empty() && ssl != "NULL" {
            msg = "TLS requires updated".into();
            done_msg = None;
            statements.push(if server.old_user_mgmt() {
                format!("GRANT USAGE ON *.* TO {} REQUIRE NONE", who(h))
            } else {
                format!("ALTER USER {} REQUIRE NONE", who(h))
            });
        }
    }
    let attributes = if server.attributes() {
        Value::from(())
    } else {
        Value::from_pairs(Vec::<(String, Value)>::new())
    };
    let r = r
        .with("password_changed", password_changed)
        .with("attributes", attributes);
    if statements.is_empty() {
        return Ok(Plan::Unchanged(r.with_msg(msg)));
    }
    let preview = r.clone().with_msg(msg.clone());
    let done = r.with_msg(done_msg.unwrap_or(msg));
    Ok(change(preview, |_| done, login, statements))
}

/// The result a run reports is the one check mode reports.
fn r_changed_same(preview: &ModuleResult) -> ModuleResult {
    preview.clone()
}

fn change(
    mut preview: ModuleResult,
    done: impl FnOnce(&ModuleResult) -> ModuleResult,
    login: Login,
    statements: Vec<String>,
) -> Plan {
    preview.changed = true;
    let mut result = done(&preview);
    result.changed = true;
    Plan::Change {
        preview,
        action: Box::new(UserRun {
            login,
            statements,
            result,
        }),
    }
}

fn grant(target: &str, privs: &[String], who: &str) -> String {
    let list: Vec<&str> = privs.iter().map(String::as_str).filter(|p| *p != "GRANT").collect();
    let mut q = format!("GRANT {} ON {target} TO {who}", list.join(","));
    if privs.iter().any(|p| p == "GRANT") {
        q.push_str(" WITH GRANT OPTION");
    }
    q
}

fn revoke(target: &str, privs: &[String], grant_option: bool, who: &str, out: &mut Vec<String>) {
    if grant_option {
        out.push(format!("REVOKE GRANT OPTION ON {target} FROM {who}"));
    }
    let list: Vec<&str> = privs.iter().map(String::as_str).filter(|p| *p != "GRANT").collect();
    let s = list.join(",");
    if !(s.is_empty() || grant_option && s == "USAGE") {
        out.push(format!("REVOKE {s} ON {target} FROM {who}"));
    }
    out.push("FLUSH PRIVILEGES".into());
}

/// `user_mod`'s privilege steps: revoke what the new list leaves out (unless appending), grant
/// what is new, and for a `db.table` in both, grant the missing and revoke the extra. Returns the
/// message of the last step that changed something.
fn plan_privileges(
    user: &str,
    who: &str,
    curr: &Privs,
    new: &Privs,
    append: bool,
    out: &mut Vec<String>,
) -> Option<String> {
    let mut msg = None;
    let mut grant_option = false;
    if !append {
        for (target, privs) in curr {
            if privs.iter().any(|p| p == "GRANT") {
                grant_option = true;
            }
            if !new.contains_key(target) && user != "root" && !privs.iter().any(|p| p == "PROXY") {
                msg = Some("Privileges updated".to_string());
                revoke(target, privs, grant_option, who, out);
            }
        }
    }
    for (target, privs) in new {
        if !curr.contains_key(target) {
            msg = Some("New privileges granted".to_string());
            out.push(grant(target, privs, who));
        }
    }
    for (target, want) in new {
        let Some(have) = curr.get(target) else { continue };
        let missing = |a: &[String], b: &[String]| -> Vec<String> {
            let mut v: Vec<String> = a.iter().filter(|p| !b.contains(p)).cloned().collect();
            v.sort();
            v.dedup();
            v
        };
        let mut grant_privs = missing(want, have);
        let mut revoke_privs = if append { Vec::new() } else { missing(have, want) };
        if !append {
            if grant_privs.iter().any(|p| p == "ALL" || p == "ALL PRIVILEGES") {
                revoke_privs.retain(|p| p == "GRANT" || p == "PROXY");
            }
            grant_option = revoke_privs.iter().any(|p| p == "GRANT") && !grant_privs.iter().any(|p| p == "GRANT");
        }
        if grant_privs == ["GRANT"] {
            grant_privs.push("USAGE".into());
        }
        if !grant_privs.is_empty() || !revoke_privs.is_empty() {
            msg = Some(format!(
                "Privileges updated: granted {}, revoked {}",
                py_list(&grant_privs),
                py_list(&revoke_privs)
            ));
            if !revoke_privs.is_empty() {
                revoke(target, &revoke_privs, grant_option, who, out);
            }
            if !grant_privs.is_empty() {
                out.push(grant(target, &grant_privs, who));
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn privs(pairs: &[(&str, &[&str])]) -> Privs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_privileges_string_unpacks_as_community_mysql_unpacks_it() {
        let got = privileges_unpack("wordpress.*:all,grant/shop.orders:SELECT", false, false).unwrap();
        assert_eq!(
            got,
            privs(&[
                ("`wordpress`.*", &["ALL", "GRANT"]),
                ("`shop`.`orders`", &["SELECT"]),
                ("*.*", &["USAGE"])
            ])
        );
        assert_eq!(
            privileges_unpack("*.*:ALL", true, false).unwrap(),
            privs(&[("*.*", &["ALL"])])
        );
        assert!(privileges_unpack("wordpress.*", false, false).is_err());
    }

    #[test]
    fn show_grants_lines_read_as_privileges() {
        let lines: Vec<Vec<String>> = [
            "GRANT USAGE ON *.* TO `wp`@`localhost` IDENTIFIED BY PASSWORD '*AB'",
            "GRANT ALL PRIVILEGES ON `wordpress`.* TO `wp`@`localhost` WITH GRANT OPTION",
            "GRANT SELECT, INSERT ON `shop`.* TO `wp`@`localhost`",
            "GRANT `role1` TO `wp`@`localhost`",
        ]
        .iter()
        .map(|l| vec![l.to_string()])
        .collect();
        assert_eq!(
            privileges_get(&lines).unwrap(),
            privs(&[
                ("*.*", &["USAGE"]),
                ("`wordpress`.*", &["ALL", "GRANT"]),
                ("`shop`.*", &["SELECT", "INSERT"])
            ])
        );
    }

    #[test]
    fn adding_grant_option_grants_it_with_usage() {
        let mut out = Vec::new();
        let curr = privs(&[("*.*", &["USAGE"]), ("`wp`.*", &["ALL"])]);
        let new = privs(&[("`wp`.*", &["ALL", "GRANT"]), ("*.*", &["USAGE"])]);
        let msg = plan_privileges("wp", "'wp'@'localhost'", &curr, &new, false, &mut out);
        assert_eq!(
            msg.as_deref(),
            Some("Privileges updated: granted ['GRANT', 'USAGE'], revoked []")
        );
        assert_eq!(out, ["GRANT USAGE ON `wp`.* TO 'wp'@'localhost' WITH GRANT OPTION"]);
        out.clear();
        assert_eq!(plan_privileges("wp", "x", &new, &new, false, &mut out), None);
        assert!(out.is_empty());
    }

    #[test]
    fn the_native_hash_is_the_servers() {
        // SELECT CONCAT('*', UCASE(SHA1(UNHEX(SHA1('secret'))))) on MariaDB 10.11.
        assert_eq!(native_hash("secret"), "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
        assert!(is_hash(&native_hash("x")));
    }

    #[test]
    fn option_values_and_literals_escape_what_would_end_them() {
        assert_eq!(option_value("a\"#\\b"), "\"a\"#\\\\b\"");
        assert_eq!(lit("it's \\"), "'it\\'s \\\\'");
        assert_eq!(ident("we`ird"), "`we``ird`");
    }
}
