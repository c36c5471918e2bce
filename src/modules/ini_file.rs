//! `community.general.ini_file`: one option (or a whole section) of an INI file set or removed,
//! line for line as community.general's `do_ini` does it (the same matching of commented and
//! spaced options, the same placement of new lines, the same messages), computed on the
//! controller from the file's content and written as `copy` writes it.

use super::files::{file_params, plan_content_as, read_current};
use super::spec::{GENERAL, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use minijinja::Value;
use minijinja::value::ValueKind;
use regex::Regex;

/// `ini_file`, as community.general 11's.
pub struct IniFile;

static INI_FILE: ModuleSpec = ModuleSpec {
    params: file_params![
        req("path").aliases(&["dest"]),
        p("section"),
        p("section_has_values"),
        p("option"),
        p("value"),
        p("values"),
        p("backup"),
        p("state").choices(&["absent", "present"]),
        p("exclusive"),
        p("no_extra_spaces"),
        p("ignore_spaces"),
        p("allow_no_value"),
        p("modify_inactive_option"),
        p("create"),
        p("follow"),
    ],
    exclusive: &[("value", "values")],
    ..ModuleSpec::new("ini_file", GENERAL)
};

impl Module for IniFile {
    fn spec(&self) -> &'static ModuleSpec {
        &INI_FILE
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(check(args, ctx))
    }
}

/// The name of the section ansible's algorithm puts in front of the file, so that options
/// before the first section header are a section like the others.
const FAKE_SECTION: &str = "ad01e11446efb704fcdbdb21f2c43757423d91c5";

/// `section_has_values`: each option and the values (any, when empty) one of its lines has.
pub type Conditions = Vec<(String, Vec<String>)>;

/// What the task asks of the file.
#[derive(Debug, Default, Clone)]
pub struct IniArgs {
    pub section: Option<String>,
    pub section_has_values: Option<Conditions>,
    pub option: Option<String>,
    pub values: Vec<String>,
    pub present: bool,
    pub exclusive: bool,
    pub no_extra_spaces: bool,
    pub ignore_spaces: bool,
    pub allow_no_value: bool,
    pub modify_inactive_option: bool,
}

/// The result of the edit: the new text, whether it changed, and the module's message.
#[derive(Debug, PartialEq, Eq)]
pub struct IniEdit {
    pub text: String,
    pub changed: bool,
    pub msg: &'static str,
}

/// `match_opt` (a commented `#`/`;` line counts) or `match_active_opt`, as one pattern.
struct OptMatcher {
    re: Regex,
}

impl OptMatcher {
    fn new(option: &str, inactive_too: bool) -> OptMatcher {
        let comment = if inactive_too { "([#;]?)" } else { "()" };
        let re = Regex::new(&format!(
            r"^( |\t)*{comment}( |\t)*({})( |\t)*(=|$)( |\t)*(.*)",
            regex::escape(option)
        ))
        .expect("an escaped option makes a valid pattern");
        OptMatcher { re }
    }

    /// Whether the line is the option, and if so whether it is commented out and its value.
    /// Python's `$` also matches before the line's final newline; matching the line without it
    /// gives the same answers.
    fn find(&self, line: &str) -> Option<(bool, String)> {
        let body = line.strip_suffix('\n').unwrap_or(line);
        self.re.captures(body).map(|c| {
            let commented = c.get(2).is_some_and(|m| !m.as_str().is_empty());
            (commented, c.get(8).map_or("", |m| m.as_str()).to_string())
        })
    }
}

fn blank_or_comment(line: &str) -> bool {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let rest = body.trim_start_matches([' ', '\t']);
    rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')
}

/// Lines as Python's text-mode `readlines()` gives them: BOM dropped, newlines universal.
fn read_lines(content: &str) -> Vec<String> {
    let text = content.strip_prefix('\u{feff}').unwrap_or(content);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split_inclusive('\n').map(str::to_string).collect()
}

/// community.general's `do_ini` on a file's text (empty for a file that is not there).
pub fn edit(content: &str, a: &IniArgs) -> IniEdit {
    let mut values: Vec<String> = Vec::new();
    for v in &a.values {
        if !values.contains(v) {
            values.push(v.clone());
        }
    }
    let mut changed = false;
    let mut ini_lines = read_lines(content);
    if ini_lines.is_empty() {
        ini_lines.push("\n".into());
    }
    if let Some(last) = ini_lines.last_mut()
        && !last.ends_with('\n')
    {
        last.push('\n');
        changed = true;
    }
    ini_lines.insert(0, format!("[{FAKE_SECTION}]"));
    ini_lines.push("[".into());
    let section = a
        .section
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| FAKE_SECTION.to_string());
    let assignment = |option: &str, value: &str| {
        if a.no_extra_spaces {
            format!("{option}={value}\n")
        } else {
            format!("{option} = {value}\n")
        }
    };
    let section_re = Regex::new(&format!(r"^\[\s*{}\s*\]", regex::escape(section.trim())))
        .expect("an escaped section makes a valid pattern");
    let has_values = |lines: &[String]| match &a.section_has_values {
        None => true,
        Some(conds) => conds.iter().all(|(opt, vals)| {
            let m = OptMatcher::new(opt, true);
            lines
                .iter()
                .any(|l| m.find(l).is_some_and(|(_, v)| vals.is_empty() || vals.contains(&v)))
        }),
    };
    let mut within_section = false;
    let (mut section_start, mut section_end) = (0, 0);
    for (index, line) in ini_lines.iter().enumerate() {
        if within_section && line.starts_with('[') {
            if has_values(&ini_lines[section_start..index]) {
                section_end = index;
                break;
            }
            within_section = false;
            section_start = 0;
            section_end = 0;
        }
        if section_re.is_match(line) {
            within_section = true;
            section_start = index;
        }
    }
    let after: Vec<String> = ini_lines[section_end..].to_vec();
    let mut section_lines: Vec<String> = ini_lines[section_start..section_end].to_vec();
    let before: Vec<String> = ini_lines[..section_start].to_vec();
    let mut changed_lines = vec![false; section_lines.len()];
    let mut msg = "OK";
    let mut option_no_value_present = false;
    let option = a.option.clone().filter(|o| !o.is_empty());
    let matcher = option.as_deref().map(|o| OptMatcher::new(o, a.modify_inactive_option));
    let any_matcher = option.as_deref().map(|o| OptMatcher::new(o, true));
    let active = option.as_deref().map(|o| OptMatcher::new(o, false));
    // `update_section_line`: with `ignore_spaces`, an active line whose value is the same is
    // left as it is.
    let update = |lines: &mut Vec<String>, changed_lines: &mut Vec<bool>, index: usize, newline: String| {
        let any = any_matcher.as_ref().expect("an option");
        let mut option_changed = None;
        if a.ignore_spaces
            && let Some((false, old)) = any.find(&lines[index])
        {
            option_changed = Some(any.find(&newline).map(|(_, v)| v) != Some(old));
        }
        let option_changed = option_changed.unwrap_or(lines[index] != newline);
        if option_changed {
            lines[index] = newline;
        }
        changed_lines[index] = true;
        option_changed
    };

    if a.present
        && let (Some(opt), Some(m)) = (&option, &matcher)
    {
        for index in 0..section_lines.len() {
            let Some((_, value)) = m.find(&section_lines[index]) else {
                continue;
            };
            if !values.is_empty() && values.contains(&value) {
                let newline = if value.is_empty() && a.allow_no_value {
                    option_no_value_present = true;
                    format!("{opt}\n")
                } else {
                    assignment(opt, &value)
                };
                if update(&mut section_lines, &mut changed_lines, index, newline) {
                    changed = true;
                    msg = "option changed";
                }
                values.retain(|v| v != &value);
            } else if values.is_empty() && a.allow_no_value {
                if update(&mut section_lines, &mut changed_lines, index, format!("{opt}\n")) {
                    changed = true;
                    msg = "option changed";
                }
                option_no_value_present = true;
                break;
            }
        }
    }

    if a.present
        && a.exclusive
        && !a.allow_no_value
        && let (Some(opt), Some(m)) = (&option, &matcher)
    {
        if !values.is_empty() {
            for index in 0..section_lines.len() {
                if !changed_lines[index] && m.find(&section_lines[index]).is_some() {
                    let newline = assignment(opt, &values.remove(0));
                    if update(&mut section_lines, &mut changed_lines, index, newline) {
                        changed = true;
                        msg = "option changed";
                    }
                    if values.is_empty() {
                        break;
                    }
                }
            }
        }
        for index in (1..section_lines.len()).rev() {
            if !changed_lines[index] && m.find(&section_lines[index]).is_some() {
                section_lines.remove(index);
                changed_lines.remove(index);
                changed = true;
                msg = "option changed";
            }
        }
    }

    if a.present {
        for index in (1..=section_lines.len()).rev() {
            if blank_or_comment(&section_lines[index - 1]) {
                continue;
            }
            if let Some(opt) = &option {
                if !values.is_empty() {
                    for element in values.iter().rev() {
                        section_lines.insert(index, assignment(opt, element));
                        msg = "option added";
                        changed = true;
                    }
                } else if a.allow_no_value && !option_no_value_present {
                    section_lines.insert(index, format!("{opt}\n"));
                    msg = "option added";
                    changed = true;
                }
            }
            break;
        }
    }

    if !a.present {
        match &active {
            Some(m) if a.exclusive => {
                let kept: Vec<String> = section_lines.iter().filter(|l| m.find(l).is_none()).cloned().collect();
                if kept != section_lines {
                    changed = true;
                    msg = "option changed";
                    section_lines = kept;
                }
            }
            Some(m) if !values.is_empty() => {
                let kept: Vec<String> = section_lines
                    .iter()
                    .filter(|l| !m.find(l).is_some_and(|(_, v)| values.contains(&v)))
                    .cloned()
                    .collect();
                if kept != section_lines {
                    changed = true;
                    msg = "option changed";
                    section_lines = kept;
                }
            }
            Some(_) => {}
            None => {
                if !section_lines.is_empty() {
                    section_lines.clear();
                    msg = "section removed";
                    changed = true;
                }
            }
        }
    }

    let mut ini_lines: Vec<String> = before.into_iter().chain(section_lines).chain(after).collect();
    ini_lines.remove(0);
    ini_lines.pop();

    if !within_section && a.present {
        ini_lines.push(format!("[{section}]\n"));
        msg = "section and option added";
        for (opt, vals) in a.section_has_values.iter().flatten() {
            if Some(opt) != option.as_ref() {
                if !vals.is_empty() {
                    for v in vals {
                        ini_lines.push(assignment(opt, v));
                    }
                } else if a.allow_no_value {
                    ini_lines.push(format!("{opt}\n"));
                }
            } else if !a.exclusive {
                for v in vals {
                    if !values.contains(v) {
                        values.push(v.clone());
                    }
                }
            }
        }
        match &option {
            Some(opt) if !values.is_empty() => {
                for v in &values {
                    ini_lines.push(assignment(opt, v));
                }
            }
            Some(opt) if a.allow_no_value => ini_lines.push(format!("{opt}\n")),
            _ => msg = "only section added",
        }
        changed = true;
    }
    IniEdit {
        text: ini_lines.concat(),
        changed,
        msg,
    }
}

/// A `type='list', elements='str'` value: a list, or one string split at commas.
fn str_list(v: &Value) -> Result<Vec<String>, Failure> {
    if v.kind() == ValueKind::Seq {
        let items = v.try_iter().map_err(|e| e.to_string())?;
        return Ok(items.map(|x| crate::values::value_to_string(&x)).collect());
    }
    Ok(crate::values::value_to_string(v)
        .split(',')
        .map(|s| s.trim().to_string())
        .collect())
}

fn section_has_values(args: &Args) -> Result<Option<Conditions>, Failure> {
    let Some(v) = args.get("section_has_values") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for item in v.try_iter().map_err(|e| e.to_string())? {
        let option = item
            .get_attr("option")
            .ok()
            .filter(|o| !o.is_undefined() && !o.is_none())
            .ok_or("missing required arguments: option found in section_has_values")?;
        let get = |k: &str| item.get_attr(k).ok().filter(|x| !x.is_undefined() && !x.is_none());
        let values = match (get("value"), get("values")) {
            (Some(_), Some(_)) => {
                return Err("parameters are mutually exclusive: value|values found in section_has_values".into());
            }
            (Some(one), None) => vec![crate::values::value_to_string(&one)],
            (None, Some(many)) => str_list(&many)?,
            (None, None) => Vec::new(),
        };
        out.push((crate::values::value_to_string(&option), values));
    }
    Ok(Some(out))
}

async fn check(args: &Args, ctx: &Ctx<'_>) -> Result<Plan, Failure> {
    let path = args.req_str("path")?;
    let present = args.str("state")?.as_deref() != Some("absent");
    let allow_no_value = args.bool("allow_no_value", false)?;
    let value = args.str("value")?;
    let values = match args.get("values") {
        Some(v) => Some(str_list(v)?),
        None => None,
    };
    if present && !allow_no_value && value.is_none() && values.as_ref().is_none_or(Vec::is_empty) {
        return Err("Parameter 'value(s)' must be defined if state=present and allow_no_value=False.".into());
    }
    let a = IniArgs {
        section: args.str("section")?,
        section_has_values: section_has_values(args)?,
        option: args.str("option")?,
        values: value.map(|v| vec![v]).or(values).unwrap_or_default(),
        present,
        exclusive: args.bool("exclusive", true)?,
        no_extra_spaces: args.bool("no_extra_spaces", false)?,
        ignore_spaces: args.bool("ignore_spaces", false)?,
        allow_no_value,
        modify_inactive_option: args.bool("modify_inactive_option", true)?,
    };
    // `follow` writes through a link to its target, as the module's realpath does.
    let mut target = path.clone();
    if args.bool("follow", false)? {
        let mut cmd = crate::connection::Command::new(format!(
            "[ -L {p} ] && readlink -f {p} || printf '%s\\n' {p}",
            p = crate::shell::quote(&path)
        ));
        cmd.become_user = ctx.become_user.clone();
        let out = ctx.conn.exec(&cmd).await?;
        target = out.stdout_text().trim_end_matches('\n').to_string();
    }
    let current = read_current(&target, ctx).await?;
    if current.is_dir() {
        return Err(format!("[Errno 21] Is a directory: '{target}'").into());
    }
    if current.content.is_none() && !args.bool("create", true)? {
        let mut r = ModuleResult::failed(format!("Destination {target} does not exist!"));
        r.rc = Some(257);
        return Err(Failure::Failed(Box::new(r)));
    }
    let before = String::from_utf8_lossy(current.content.as_deref().unwrap_or_default()).into_owned();
    let e = edit(&before, &a);
    let header = format!("{path} (content)");
    let diff = crate::values::from_serde(&serde_json::json!({
        "before": if ctx.diff { before.as_str() } else { "" },
        "after": if ctx.diff { e.text.as_str() } else { "" },
        "before_header": header,
        "after_header": header,
    }));
    let result = ModuleResult {
        changed: e.changed,
        msg: Some(e.msg.to_string()),
        ..ModuleResult::default()
    }
    .with("path", path.as_str())
    .with("diff", diff);
    // Attributes are compared only in a real run (ansible's module sets them after the edit,
    // never in check mode), and there is nothing to compare on a file no one will create.
    if !e.changed && (ctx.check_mode || current.content.is_none()) {
        return Ok(Plan::Unchanged(result));
    }
    let content = if e.changed {
        e.text.into_bytes()
    } else {
        current.content.clone().unwrap_or_default()
    };
    plan_content_as(target, current, content, args, true, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(section: Option<&str>, option: &str, value: &str) -> IniArgs {
        IniArgs {
            section: section.map(str::to_string),
            option: Some(option.into()),
            values: vec![value.into()],
            present: true,
            exclusive: true,
            modify_inactive_option: true,
            ..IniArgs::default()
        }
    }

    #[test]
    fn a_new_file_gets_the_leading_blank_line_ansible_writes() {
        let e = edit("", &set(Some("drinks"), "fav", "lemonade"));
        assert_eq!(e.text, "\n[drinks]\nfav = lemonade\n");
        assert_eq!(e.msg, "section and option added");
    }

    #[test]
    fn a_commented_option_is_replaced_in_place_and_a_second_run_is_ok() {
        let first = edit("[a]\n# k = 1\nz = 2\n", &set(Some("a"), "k", "3"));
        assert_eq!(first.text, "[a]\nk = 3\nz = 2\n");
        assert!(first.changed);
        let again = edit(&first.text, &set(Some("a"), "k", "3"));
        assert!(!again.changed);
        assert_eq!(again.msg, "OK");
    }
}
