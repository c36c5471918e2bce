//! `validate_argument_spec`: check variables against an argument spec, as the task Ansible puts
//! first in a role whose `meta/argument_specs` names the entry point does. The values come from
//! every variable the task sees (the inventory's too) with the role's params over them, and
//! the errors are ansible-core 2.19's ArgumentSpecValidator's, in its order.

use super::spec::{BUILTIN, Capability, ModuleSpec, p, req};
use super::{Args, Ctx, Failure, Module, ModuleResult, Plan, Step};
use crate::values::value_to_string;
use minijinja::Value;
use minijinja::value::ValueKind;
use std::future::ready;

pub struct ValidateArgumentSpec;

static VALIDATE_ARGUMENT_SPEC: ModuleSpec = ModuleSpec {
    params: &[
        req("argument_spec"),
        p("provided_arguments"),
        p("validate_args_context"),
    ],
    capabilities: &[Capability::Controller],
    ..ModuleSpec::new("validate_argument_spec", BUILTIN)
};

impl Module for ValidateArgumentSpec {
    fn spec(&self) -> &'static ModuleSpec {
        &VALIDATE_ARGUMENT_SPEC
    }

    fn check<'a>(&'a self, args: &'a Args, ctx: &'a Ctx<'a>) -> Step<'a, Plan> {
        Box::pin(ready(validate(args, ctx).map(Plan::Unchanged)))
    }
}

/// Python's name of a value's type, as the messages say it.
fn py_type(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::String => "str",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::Seq | ValueKind::Iterable => "list",
        ValueKind::Map => "dict",
        ValueKind::None | ValueKind::Undefined => "NoneType",
        _ => "object",
    }
}

/// Python's `repr` of a scalar: strings in single quotes.
fn py_repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => format!("'{}'", v.as_str().unwrap_or("")),
        _ => value_to_string(v),
    }
}

/// Ansible's `check_type_*` for one value: why it cannot be of `ty`, if it cannot.
pub(crate) fn type_error(ty: &str, v: &Value) -> Option<String> {
    let text = || value_to_string(v);
    match ty {
        "int" => match v.kind() {
            ValueKind::Number if v.is_integer() => None,
            ValueKind::Number if f64::try_from(v.clone()).is_ok_and(|f| f.fract() == 0.0) => None,
            ValueKind::String if text().trim().parse::<i64>().is_ok() => None,
            ValueKind::String => Some(format!("\"{}\" cannot be converted to an int", py_repr(v))),
            _ => Some(format!("<class '{}'> cannot be converted to an int", py_type(v))),
        },
        "float" => match v.kind() {
            ValueKind::Number => None,
            ValueKind::String if text().trim().parse::<f64>().is_ok() => None,
            ValueKind::String => Some(format!("\"{}\" cannot be converted to a float", py_repr(v))),
            _ => Some(format!("<class '{}'> cannot be converted to a float", py_type(v))),
        },
        "bool" => {
            let ok = match v.kind() {
                ValueKind::Bool => true,
                ValueKind::String | ValueKind::Number => matches!(
                    text().to_ascii_lowercase().as_str(),
                    "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" | "n" | "no" | "off" | "0" | "false" | "f" | "0.0"
                ),
                _ => false,
            };
            (!ok).then(|| format!("The value {} is not a valid boolean.", py_repr(v)))
        }
        "list" => match v.kind() {
            ValueKind::Seq | ValueKind::Iterable | ValueKind::String | ValueKind::Number | ValueKind::Bool => None,
            _ => Some(format!("<class '{}'> cannot be converted to a list", py_type(v))),
        },
        "dict" => match v.kind() {
            ValueKind::Map => None,
            // A JSON object or `k=v` pairs as text.
            ValueKind::String if text().starts_with('{') => {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text())
                    .is_err()
                    .then(|| "unable to evaluate string as dictionary".to_string())
            }
            ValueKind::String if text().contains('=') => None,
            ValueKind::String => Some("dictionary requested, could not parse JSON or key=value".to_string()),
            _ => Some(format!("<class '{}'> cannot be converted to a dict", py_type(v))),
        },
        // `str` converts whatever it gets; `path` and `raw` take anything.
        _ => None,
    }
}

/// The values `check_type_list` makes of a list option: a string splits at commas.
fn list_items(v: &Value) -> Vec<Value> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => v.try_iter().map(|i| i.collect()).unwrap_or_default(),
        ValueKind::String => value_to_string(v).split(',').map(Value::from).collect(),
        _ => vec![v.clone()],
    }
}

fn validate(args: &Args, ctx: &Ctx<'_>) -> Result<ModuleResult, Failure> {
    let spec = args
        .get("argument_spec")
        .filter(|s| s.kind() == ValueKind::Map)
        .ok_or("Incorrect type for argument_spec, expected dict")?;
    let provided = args.get("provided_arguments").cloned().unwrap_or(Value::from(()));
    if !matches!(provided.kind(), ValueKind::Map | ValueKind::None) {
        return Err("Incorrect type for provided_arguments, expected dict".into());
    }
    let names = keys(spec)?;
    // Every variable the task sees that the spec names, with the role's params over them.
    let mut values: Vec<(String, Value)> = Vec::new();
    for name in &names {
        let given = provided.get_attr(name).ok().filter(|v| !v.is_undefined());
        let seen = || {
            let ident = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ident
                .then(|| ctx.templar.eval(name, ctx.scope).ok())
                .flatten()
                .filter(|v| !v.is_undefined())
        };
        if let Some(v) = given.or_else(seen) {
            values.push((name.clone(), v));
        }
    }
    let mut unsupported = Vec::new();
    // Params the spec does not name.
    if provided.kind() == ValueKind::Map {
        for k in keys(&provided)? {
            if !names.contains(&k) {
                unsupported.push((k, names.clone()));
            }
        }
    }
    let mut errors = Vec::new();
    // The validator lists the no_log values of sub-options before anything else, and the
    // first sub-option value that is no mapping stops that with an error of its own.
    if let Some(e) = first_bad_sub_value(spec, &values)? {
        errors.push(e);
    }
    level(spec, &values, &mut Vec::new(), &mut errors, &mut unsupported)?;
    // Reported last, in one line, as the validator does; it lists the parameters of the level
    // of the last name it met (the last one in order here).
    if !unsupported.is_empty() {
        unsupported.sort();
        let mut supported = unsupported[unsupported.len() - 1].1.clone();
        supported.sort();
        let names: Vec<&str> = unsupported.iter().map(|(n, _)| n.as_str()).collect();
        errors.push(format!(
            "{}. Supported parameters include: {}.",
            names.join(", "),
            supported.join(", ")
        ));
    }

    let context = args.get("validate_args_context").cloned().unwrap_or(Value::from(()));
    if errors.is_empty() {
        return Ok(ModuleResult::ok()
            .with_msg("The arg spec validation passed")
            .with("validate_args_context", context));
    }
    let mut r = ModuleResult::failed(format!("Validation of arguments failed:\n{}", errors.join("\n")))
        .with("argument_errors", Value::from(errors))
        .with("argument_spec_data", spec.clone())
        .with("validate_args_context", context);
    r.changed = false;
    Ok(r)
}

/// A mapping's keys, as text.
fn keys(map: &Value) -> Result<Vec<String>, Failure> {
    Ok(map
        .try_iter()
        .map_err(|e| e.to_string())?
        .map(|k| value_to_string(&k))
        .collect())
}

/// ` found in a -> b`, the place of a nested option in the validator's messages.
fn found_in(context: &[String]) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" found in {}", context.join(" -> "))
    }
}

/// Validate `values` against one level of a spec (the options of the spec, or of a `dict` /
/// `list` of `dict` option), then the levels under it, in ArgumentSpecValidator's order:
/// required, types (values converted), choices, sub-options. `context` names the options
/// above this level; the names no option of a nested level takes go to `unsupported`, with
/// the names it takes.
fn level(
    spec: &Value,
    values: &[(String, Value)],
    context: &mut Vec<String>,
    errors: &mut Vec<String>,
    unsupported: &mut Vec<(String, Vec<String>)>,
) -> Result<(), Failure> {
    let names = keys(spec)?;
    let option = |name: &str| spec.get_attr(name).unwrap_or(Value::UNDEFINED);
    let attr = |o: &Value, key: &str| o.get_attr(key).ok().filter(|v| !v.is_undefined() && !v.is_none());
    let value = |values: &[(String, Value)], name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());

    let mut missing: Vec<&str> = names
        .iter()
        .filter(|n| attr(&option(n), "required").is_some_and(|r| r.is_true()))
        .filter(|n| value(values, n).is_none_or(|v| v.is_none()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        missing.sort();
        errors.push(format!(
            "missing required arguments: {}{}",
            missing.join(", "),
            found_in(context)
        ));
    }
    // The validator's own odd punctuation: `found in 'a'.` inside the sentence.
    let quoted = if context.is_empty() {
        String::new()
    } else {
        format!(" found in '{}'", context.join(" -> "))
    };
    // Types, then each value against its choices, as the validator goes.
    for name in &names {
        let (Some(v), o) = (value(values, name), option(name)) else {
            continue;
        };
        if v.is_none() {
            continue;
        }
        let ty = attr(&o, "type")
            .map(|t| value_to_string(&t))
            .unwrap_or_else(|| "str".into());
        if let Some(why) = type_error(&ty, &v) {
            let at = if quoted.is_empty() {
                String::new()
            } else {
                format!("{quoted}.")
            };
            errors.push(format!(
                "argument '{name}' is of type {}{at} and we were unable to convert to {ty}: {why}",
                py_type(&v)
            ));
            continue;
        }
        if ty == "list"
            && let Some(el) = attr(&o, "elements").map(|t| value_to_string(&t))
        {
            for item in list_items(&v) {
                if let Some(why) = type_error(&el, &item) {
                    errors.push(format!(
                        "Elements value for option '{name}'{quoted} is of type {} and we were unable to convert to {el}: {why}",
                        py_type(&item)
                    ));
                }
            }
        }
    }
    for name in &names {
        let (Some(v), o) = (value(values, name), option(name)) else {
            continue;
        };
        let Some(choices) = attr(&o, "choices").filter(|c| c.kind() == ValueKind::Seq) else {
            continue;
        };
        let choices: Vec<String> = choices
            .try_iter()
            .map_err(|e| e.to_string())?
            .map(|c| value_to_string(&c))
            .collect();
        let ty = attr(&o, "type").map(|t| value_to_string(&t)).unwrap_or_default();
        if ty == "list" {
            let off: Vec<String> = list_items(&v)
                .iter()
                .map(value_to_string)
                .filter(|i| !choices.contains(i))
                .collect();
            if !off.is_empty() {
                errors.push(format!(
                    "value of {name} must be one or more of: {}. Got no match for: {}{}",
                    choices.join(", "),
                    off.join(", "),
                    found_in(context)
                ));
            }
        } else if !v.is_none() && !choices.contains(&value_to_string(&v)) {
            errors.push(format!(
                "value of {name} must be one of: {}, got: {}{}",
                choices.join(", "),
                value_to_string(&v),
                found_in(context)
            ));
        }
    }
    // Sub-options: a `dict` option's value, or each element of a `list` of `dict`.
    for name in &names {
        let o = option(name);
        let ty = attr(&o, "type").map(|t| value_to_string(&t)).unwrap_or_default();
        let elements = attr(&o, "elements").map(|t| value_to_string(&t)).unwrap_or_default();
        if !(ty == "dict" || (ty == "list" && elements == "dict")) {
            continue;
        }
        let Some(sub) = attr(&o, "options").filter(|s| s.kind() == ValueKind::Map) else {
            continue;
        };
        let Some(v) = value(values, name).filter(|v| !v.is_none()) else {
            continue;
        };
        context.push(name.clone());
        let items: Vec<Value> = match v.kind() {
            // Elements that failed their conversion to `dict` were left out by then.
            ValueKind::Seq | ValueKind::Iterable if ty == "list" => v
                .try_iter()
                .map(|i| i.filter(|x| x.kind() == ValueKind::Map).collect())
                .unwrap_or_default(),
            ValueKind::Seq | ValueKind::Iterable => v.try_iter().map(|i| i.collect()).unwrap_or_default(),
            _ => vec![v.clone()],
        };
        let sub_names = keys(&sub)?;
        for item in items {
            if item.kind() != ValueKind::Map {
                errors.push(format!("value of '{name}' must be of type dict or list of dicts"));
                continue;
            }
            let mut sub_values: Vec<(String, Value)> = Vec::new();
            for k in keys(&item)? {
                let given = item.get_attr(&k).unwrap_or(Value::UNDEFINED);
                // An alias stands for its option.
                let target = sub_names.iter().find(|n| {
                    **n == k
                        || attr(&sub.get_attr(n).unwrap_or(Value::UNDEFINED), "aliases")
                            .and_then(|a| a.try_iter().ok().map(|mut i| i.any(|x| value_to_string(&x) == k)))
                            .unwrap_or(false)
                });
                match target {
                    Some(t) => sub_values.push((t.clone(), given)),
                    None => {
                        let mut path = context.clone();
                        path.push(k);
                        unsupported.push((path.join("."), sub_names.clone()));
                    }
                }
            }
            level(&sub, &sub_values, context, errors, unsupported)?;
        }
        context.pop();
    }
    Ok(())
}

/// ansible-core's `_list_no_log_values` walk over the sub-options: the first value of an
/// option with `options` that is no mapping (a string that is no JSON object or `k=v` text, or
/// another type), as the message it raises.
fn first_bad_sub_value(spec: &Value, values: &[(String, Value)]) -> Result<Option<String>, Failure> {
    for name in keys(spec)? {
        let o = spec.get_attr(&name).unwrap_or(Value::UNDEFINED);
        let attr = |key: &str| o.get_attr(key).ok().filter(|v| !v.is_undefined() && !v.is_none());
        let Some(sub) = attr("options").filter(|s| s.kind() == ValueKind::Map) else {
            continue;
        };
        let ty = attr("type").map(|t| value_to_string(&t)).unwrap_or_default();
        let elements = attr("elements").map(|t| value_to_string(&t)).unwrap_or_default();
        if !(ty == "dict" || (ty == "list" && elements == "dict")) {
            continue;
        }
        let Some(v) = values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()) else {
            continue;
        };
        if v.is_none() {
            continue;
        }
        let items: Vec<Value> = match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => v.try_iter().map(|i| i.collect()).unwrap_or_default(),
            _ => vec![v],
        };
        for item in items {
            match item.kind() {
                ValueKind::Map => {
                    let inner: Vec<(String, Value)> = keys(&item)?
                        .into_iter()
                        .map(|k| {
                            let x = item.get_attr(&k).unwrap_or(Value::UNDEFINED);
                            (k, x)
                        })
                        .collect();
                    if let Some(e) = first_bad_sub_value(&sub, &inner)? {
                        return Ok(Some(e));
                    }
                }
                ValueKind::String => {
                    if let Some(e) = type_error("dict", &item) {
                        return Ok(Some(e));
                    }
                }
                _ => {
                    return Ok(Some(format!(
                        "Value '{}' in the sub parameter field '{name}' must be a {ty}, not '{}'",
                        value_to_string(&item),
                        py_type(&item)
                    )));
                }
            }
        }
    }
    Ok(None)
}
