//! `to_datetime` and `strftime` as ansible-core 2.19 has them (Python's `datetime.strptime` and
//! `time.strftime`), and the datetime value `to_datetime` gives: its fields, its methods
//! (`strftime`, `isoformat`, `timestamp`, `weekday`...) and comparisons.
//!
//! Subtracting datetimes gives Python's `timedelta` (`.days`, `.seconds`, `.microseconds`,
//! `.total_seconds()`), as in Ansible templates: minijinja's `-` takes numbers only, so an
//! expression that uses datetimes (`to_datetime`, `now()`) has its subtractions read as calls of
//! one function that knows both ([`arithmetic`]); numbers subtract there as minijinja's `-` does.

use crate::values::value_to_string;
use chrono::{Datelike, NaiveDateTime, TimeZone, Timelike};
use minijinja::value::{Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use std::sync::Arc;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Python's format to chrono's: `%f` is microseconds (six digits) in Python, nanoseconds in chrono.
fn chrono_format(py: &str, parsing: bool) -> String {
    let mut out = String::new();
    let mut chars = py.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') if !parsing => out.push_str("%6f"),
            // chrono reads a fraction with its dot (`%.f`); Python's `.%f` is the same text.
            Some('f') if out.ends_with('.') => {
                out.pop();
                out.push_str("%.f");
            }
            Some(d) => {
                out.push('%');
                out.push(d);
            }
            None => out.push('%'),
        }
    }
    out
}

fn format(dt: &NaiveDateTime, fmt: &str) -> Result<String, Error> {
    use std::fmt::Write as _;
    let chrono_fmt = chrono_format(fmt, false);
    let items = chrono::format::StrftimeItems::new_lenient(&chrono_fmt);
    let mut out = String::new();
    write!(out, "{}", dt.format_with_items(items)).map_err(|_| invalid(format!("invalid date format `{fmt}`")))?;
    Ok(out)
}

/// Python's `datetime.strptime`: the fields the format does not give are 1900-01-01 00:00:00.
fn strptime(text: &str, fmt: &str) -> Result<NaiveDateTime, Error> {
    let mismatch = || invalid(format!("time data '{text}' does not match format '{fmt}'"));
    let mut p = chrono::format::Parsed::new();
    chrono::format::parse(
        &mut p,
        text,
        chrono::format::StrftimeItems::new(&chrono_format(fmt, true)),
    )
    .map_err(|_| mismatch())?;
    if p.year().is_none() && p.year_mod_100().is_none() && p.isoyear().is_none() {
        p.set_year(1900).map_err(|_| mismatch())?;
    }
    if p.month().is_none() && p.ordinal().is_none() && p.week_from_sun().is_none() && p.week_from_mon().is_none() {
        p.set_month(1).map_err(|_| mismatch())?;
    }
    if p.day().is_none() && p.ordinal().is_none() && p.weekday().is_none() {
        p.set_day(1).map_err(|_| mismatch())?;
    }
    let date = p.to_naive_date().map_err(|_| mismatch())?;
    if p.hour_mod_12().is_none() {
        p.set_hour(0).map_err(|_| mismatch())?;
    }
    if p.minute().is_none() {
        p.set_minute(0).map_err(|_| mismatch())?;
    }
    let time = p.to_naive_time().map_err(|_| mismatch())?;
    Ok(NaiveDateTime::new(date, time))
}

/// A naive datetime, as Python's `datetime.datetime` without a time zone.
#[derive(Debug, Clone, Copy)]
pub struct DateTime(pub NaiveDateTime);

impl DateTime {
    /// Python's `str(dt)`: microseconds only when there are some.
    fn py_str(&self, sep: char) -> String {
        let micro = self.0.nanosecond() / 1000;
        let base = self.0.format(&format!("%Y-%m-%d{sep}%H:%M:%S")).to_string();
        if micro == 0 { base } else { format!("{base}.{micro:06}") }
    }

    /// Seconds since the epoch, the datetime read in the controller's local time (as Python's
    /// `timestamp()` reads a naive datetime).
    fn timestamp(&self) -> f64 {
        let local = chrono::Local
            .from_local_datetime(&self.0)
            .earliest()
            .map(|d| d.timestamp())
            .unwrap_or_else(|| self.0.and_utc().timestamp());
        local as f64 + f64::from(self.0.nanosecond()) / 1e9
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.py_str(' '))
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let d = &self.0;
        Some(Value::from(match key.as_str()? {
            "year" => d.year() as i64,
            "month" => d.month() as i64,
            "day" => d.day() as i64,
            "hour" => d.hour() as i64,
            "minute" => d.minute() as i64,
            "second" => d.second() as i64,
            "microsecond" => (d.nanosecond() / 1000) as i64,
            _ => return None,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let d = &self.0;
        Ok(match (method, args) {
            ("strftime", [fmt]) => Value::from(format(d, &value_to_string(fmt))?),
            ("isoformat", []) => Value::from(self.py_str('T')),
            ("isoformat", [sep]) => Value::from(self.py_str(value_to_string(sep).chars().next().unwrap_or('T'))),
            ("timestamp", []) => Value::from(self.timestamp()),
            ("weekday", []) => Value::from(d.weekday().num_days_from_monday()),
            ("isoweekday", []) => Value::from(d.weekday().number_from_monday()),
            ("date", []) => Value::from(d.date().to_string()),
            ("time", []) => Value::from(d.time().format("%H:%M:%S").to_string()),
            _ => {
                return Err(Error::new(
                    ErrorKind::UnknownMethod,
                    format!(
                        "a datetime has no method `{method}` with {} argument(s); roll's has strftime, isoformat, timestamp, weekday, isoweekday, date and time",
                        args.len()
                    ),
                ));
            }
        })
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<std::cmp::Ordering> {
        other.downcast_ref::<DateTime>().map(|o| self.0.cmp(&o.0))
    }
}

/// Python's `datetime.timedelta`, held in microseconds; its fields are normalised as Python's
/// (`days` may be negative, `0 <= seconds < 86400`, `0 <= microseconds < 1000000`).
#[derive(Debug, Clone, Copy)]
pub struct TimeDelta(pub i64);

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl TimeDelta {
    fn parts(&self) -> (i64, i64, i64) {
        let days = self.0.div_euclid(MICROS_PER_DAY);
        let rest = self.0.rem_euclid(MICROS_PER_DAY);
        (days, rest / 1_000_000, rest % 1_000_000)
    }
}

impl Object for TimeDelta {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    /// Python's `str(timedelta)`: `2 days, 3:04:05.000006`, `-1 day, 23:59:59`.
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (days, secs, micros) = self.parts();
        if days != 0 {
            write!(f, "{days} day{}, ", if days.abs() == 1 { "" } else { "s" })?;
        }
        write!(f, "{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        Ok(())
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (days, secs, micros) = self.parts();
        Some(Value::from(match key.as_str()? {
            "days" => days,
            "seconds" => secs,
            "microseconds" => micros,
            _ => return None,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match (method, args) {
            ("total_seconds", []) => Ok(Value::from(self.0 as f64 / 1e6)),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!(
                    "a timedelta has no method `{method}`; roll's has total_seconds (and the fields days, seconds, microseconds)"
                ),
            )),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<std::cmp::Ordering> {
        other.downcast_ref::<TimeDelta>().map(|o| self.0.cmp(&o.0))
    }
}

/// The function subtractions are read as in expressions that use datetimes.
const SUB: &str = "__roll_sub";

/// `a - b` with datetimes: datetime − datetime is a timedelta, datetime − timedelta a datetime,
/// timedelta − timedelta a timedelta; anything else subtracts as minijinja's `-`.
fn sub(a: Value, b: Value) -> Result<Value, Error> {
    let dt = |v: &Value| v.downcast_object_ref::<DateTime>().map(|d| d.0);
    let td = |v: &Value| v.downcast_object_ref::<TimeDelta>().map(|d| d.0);
    let micros = |d: chrono::TimeDelta| {
        d.num_microseconds()
            .ok_or_else(|| invalid("the difference of these datetimes is out of range"))
    };
    if let (Some(x), Some(y)) = (dt(&a), dt(&b)) {
        return Ok(Value::from_object(TimeDelta(micros(x - y)?)));
    }
    if let (Some(x), Some(y)) = (dt(&a), td(&b)) {
        let moved = x
            .checked_sub_signed(chrono::TimeDelta::microseconds(y))
            .ok_or_else(|| invalid("date value out of range"))?;
        return Ok(Value::from_object(DateTime(moved)));
    }
    if let (Some(x), Some(y)) = (td(&a), td(&b)) {
        return Ok(Value::from_object(TimeDelta(x - y)));
    }
    let unsupported = || {
        invalid(format!(
            "tried to use - operator on unsupported types {} and {}",
            a.kind(),
            b.kind()
        ))
    };
    if a.kind() != ValueKind::Number || b.kind() != ValueKind::Number {
        return Err(unsupported());
    }
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64())
        && a.is_integer()
        && b.is_integer()
    {
        return Ok(match x.checked_sub(y) {
            Some(d) => Value::from(d),
            None => Value::from(i128::from(x) - i128::from(y)),
        });
    }
    match (f64::try_from(a.clone()), f64::try_from(b.clone())) {
        (Ok(x), Ok(y)) => Ok(Value::from(x - y)),
        _ => Err(unsupported()),
    }
}

/// An expression (or a template's `{{ }}` expressions) that uses datetimes, with its
/// subtractions read as calls of [`SUB`]; `None` when there is nothing to read so (no datetime
/// word, no `-`, or a syntax error the normal compile will report).
pub fn arithmetic(source: &str, expression: bool) -> Option<String> {
    if !source.contains('-') || !(source.contains("to_datetime") || source.contains("now(")) {
        return None;
    }
    if expression {
        return rewrite_expr(source);
    }
    // Each `{{ ... }}` of a template, up to its closing `}}` outside quotes.
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source;
    let mut changed = false;
    while let Some(open) = rest.find("{{") {
        let body_start = open + 2;
        let Some(len) = expression_end(&rest[body_start..]) else {
            break;
        };
        let body = &rest[body_start..body_start + len];
        out.push_str(&rest[..body_start]);
        match rewrite_expr(body.trim_start_matches(['-', '+']).trim_end_matches(['-', '+'])) {
            Some(new) => {
                // Whitespace control marks (`{{-`, `-}}`) stay outside the expression.
                let lead = if body.starts_with(['-', '+']) { &body[..1] } else { "" };
                let trail = if body.ends_with(['-', '+']) {
                    &body[body.len() - 1..]
                } else {
                    ""
                };
                out.push_str(lead);
                out.push_str(&new);
                out.push_str(trail);
                changed = true;
            }
            None => out.push_str(body),
        }
        rest = &rest[body_start + len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The length of an expression up to its closing `}}`, quotes skipped.
fn expression_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

fn rewrite_expr(expr: &str) -> Option<String> {
    let ast = minijinja::machinery::parse_expr(expr).ok()?;
    let mut subs = Vec::new();
    collect_subs(&ast, expr, &mut subs);
    if subs.is_empty() {
        return None;
    }
    Some(splice(expr, 0, expr.len(), &subs))
}

/// One subtraction: its whole span and where its `-` is.
struct SubAt {
    start: usize,
    end: usize,
    minus: usize,
}

fn offsets(span: minijinja::machinery::Span) -> (usize, usize) {
    (span.start_offset as usize, span.end_offset as usize)
}

/// `source[start..end]` with each subtraction in it read as a call (inner ones too).
fn splice(source: &str, start: usize, end: usize, subs: &[SubAt]) -> String {
    if let Some(whole) = subs.iter().find(|s| s.start == start && s.end == end) {
        return format!(
            "{SUB}({}, {})",
            splice(source, whole.start, whole.minus, subs),
            splice(source, whole.minus + 1, whole.end, subs)
        );
    }
    let inside = |s: &&SubAt| s.start >= start && s.end <= end;
    // The outermost subtractions in the range: inside no other one in it.
    let mut outer: Vec<&SubAt> = subs
        .iter()
        .filter(inside)
        .filter(|s| {
            !subs
                .iter()
                .filter(inside)
                .any(|o| o.start <= s.start && s.end <= o.end && (o.start, o.end) != (s.start, s.end))
        })
        .collect();
    outer.sort_by_key(|s| s.start);
    let mut out = String::new();
    let mut at = start;
    for s in outer {
        out.push_str(&source[at..s.start]);
        out.push_str(&splice(source, s.start, s.end, subs));
        at = s.end;
    }
    out.push_str(&source[at..end]);
    out
}

fn collect_subs(e: &minijinja::machinery::ast::Expr<'_>, source: &str, out: &mut Vec<SubAt>) {
    use minijinja::machinery::ast::{BinOpKind, CallArg, Expr};
    let args = |args: &[CallArg<'_>], out: &mut Vec<SubAt>| {
        for a in args {
            match a {
                CallArg::Pos(x) | CallArg::Kwarg(_, x) | CallArg::PosSplat(x) | CallArg::KwargSplat(x) => {
                    collect_subs(x, source, out)
                }
            }
        }
    };
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            collect_subs(&s.expr, source, out);
            for x in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                collect_subs(x, source, out);
            }
        }
        Expr::UnaryOp(u) => collect_subs(&u.expr, source, out),
        Expr::BinOp(b) => {
            collect_subs(&b.left, source, out);
            collect_subs(&b.right, source, out);
            if matches!(b.op, BinOpKind::Sub) {
                let (start, end) = offsets(b.span());
                let (_, left_end) = offsets(b.left.span());
                let (right_start, _) = offsets(b.right.span());
                if let Some(minus) = source.get(left_end..right_start).and_then(|g| g.find('-')) {
                    out.push(SubAt {
                        start,
                        end,
                        minus: left_end + minus,
                    });
                }
            }
        }
        Expr::Compare(c) => {
            collect_subs(&c.expr, source, out);
            for op in &c.ops {
                collect_subs(&op.expr, source, out);
            }
        }
        Expr::IfExpr(i) => {
            collect_subs(&i.test_expr, source, out);
            collect_subs(&i.true_expr, source, out);
            if let Some(f) = &i.false_expr {
                collect_subs(f, source, out);
            }
        }
        Expr::Filter(f) => {
            if let Some(x) = &f.expr {
                collect_subs(x, source, out);
            }
            args(&f.args, out);
        }
        Expr::Test(t) => {
            collect_subs(&t.expr, source, out);
            args(&t.args, out);
        }
        Expr::GetAttr(g) => collect_subs(&g.expr, source, out),
        Expr::GetItem(g) => {
            collect_subs(&g.expr, source, out);
            collect_subs(&g.subscript_expr, source, out);
        }
        Expr::Call(c) => {
            collect_subs(&c.expr, source, out);
            args(&c.args, out);
        }
        Expr::List(l) => l.items.iter().for_each(|x| collect_subs(x, source, out)),
        Expr::Tuple(t) => t.items.iter().for_each(|x| collect_subs(x, source, out)),
        Expr::Map(m) => m
            .keys
            .iter()
            .chain(&m.values)
            .for_each(|x| collect_subs(x, source, out)),
    }
}

/// `strftime`'s epoch argument: a number, or text holding one.
fn epoch(v: &Value) -> Result<f64, Error> {
    let bad = || invalid(format!("Invalid value for epoch value ({})", value_to_string(v)));
    match v.kind() {
        ValueKind::Number => f64::try_from(v.clone()).map_err(|_| bad()),
        ValueKind::Bool => Ok(if v.is_true() { 1.0 } else { 0.0 }),
        _ => value_to_string(v).trim().parse().map_err(|_| bad()),
    }
}

pub fn register(env: &mut Environment<'static>) {
    env.add_function(SUB, sub);
    // Ansible's `now(utc=False, fmt=None)`: the controller's time, a datetime or formatted.
    env.add_function("now", |kwargs: minijinja::value::Kwargs| -> Result<Value, Error> {
        let utc: bool = kwargs.get::<Option<bool>>("utc")?.unwrap_or(false);
        let fmt: Option<String> = kwargs.get("fmt")?;
        kwargs.assert_all_used()?;
        let now = if utc {
            chrono::Utc::now().naive_utc()
        } else {
            chrono::Local::now().naive_local()
        };
        Ok(match fmt {
            Some(f) => Value::from(format(&now, &f)?),
            None => Value::from_object(DateTime(now)),
        })
    });
    // (`ansible.builtin.*` names: extra_filters.)
    env.add_filter(
        "to_datetime",
        |text: Value, fmt: Option<String>| -> Result<Value, Error> {
            if text.kind() != ValueKind::String {
                return Err(invalid(format!(
                    "to_datetime expects a string, got {} `{text}`",
                    text.kind()
                )));
            }
            let fmt = fmt.unwrap_or_else(|| "%Y-%m-%d %H:%M:%S".into());
            Ok(Value::from_object(DateTime(strptime(&value_to_string(&text), &fmt)?)))
        },
    );
    env.add_filter(
        "strftime",
        |fmt: String, second: Option<Value>, kwargs: minijinja::value::Kwargs| -> Result<String, Error> {
            let utc: bool = kwargs.get::<Option<bool>>("utc")?.unwrap_or(false);
            let second = match second {
                Some(s) => Some(s),
                None => kwargs.get::<Option<Value>>("second")?,
            };
            kwargs.assert_all_used()?;
            let secs = match second.filter(|s| !s.is_none()) {
                Some(s) => epoch(&s)?,
                None => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    now.as_secs_f64()
                }
            };
            // Python's time.gmtime/localtime drop the fraction of a second.
            let whole = secs.floor() as i64;
            let utc_dt = chrono::DateTime::from_timestamp(whole, 0)
                .ok_or_else(|| invalid(format!("epoch value {secs} is out of range")))?;
            let naive = if utc {
                utc_dt.naive_utc()
            } else {
                utc_dt.with_timezone(&chrono::Local).naive_local()
            };
            format(&naive, &fmt)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveTime};

    fn midnight(date: NaiveDate) -> NaiveDateTime {
        NaiveDateTime::new(date, NaiveTime::MIN)
    }

    fn render(source: &str) -> String {
        let mut env = Environment::new();
        register(&mut env);
        let read = arithmetic(source, false).unwrap_or_else(|| source.to_string());
        env.render_str(&read, ()).unwrap()
    }

    #[test]
    fn datetimes_subtract_into_timedeltas_in_a_template_and_numbers_still_subtract() {
        let a = "'2024-03-06 07:08:09' | to_datetime";
        let b = "'2024-03-04 05:06:00' | to_datetime";
        assert_eq!(
            render(&format!("took {{{{ ({a}) - ({b}) }}}}.")),
            "took 2 days, 2:02:09."
        );
        assert_eq!(render(&format!("{{{{- (({a}) - ({b})).seconds -}}}} s")), "7329s");
        // Chained and nested: each `-` reads as its own call, numbers as minijinja's `-`.
        assert_eq!(render(&format!("{{{{ (({a}) - ({b})).days - 1 - 1 }}}}")), "0");
        assert_eq!(render("{{ 10 - 2.5 }} {{ 'x-y' }}"), "7.5 x-y");
        assert_eq!(
            render(&format!("{{{{ [(({b}) - ({a})).days, 'a-b' ~ '}}}}'] }}}}")),
            "[-3, 'a-b}}']"
        );
        assert!(arithmetic("a - b", true).is_none(), "no datetime: left as written");
    }

    #[test]
    fn strptime_fills_what_the_format_leaves_out_as_python_does() {
        let d = strptime("05/03/2024", "%d/%m/%Y").unwrap();
        assert_eq!(d, midnight(NaiveDate::from_ymd_opt(2024, 3, 5).unwrap()));
        let d = strptime("06:07", "%H:%M").unwrap();
        assert_eq!(d.to_string(), "1900-01-01 06:07:00");
        let d = strptime("2024-03-05 06:07:08.25", "%Y-%m-%d %H:%M:%S.%f").unwrap();
        assert_eq!(DateTime(d).py_str('T'), "2024-03-05T06:07:08.250000");
        assert!(strptime("yesterday", "%Y-%m-%d").is_err());
    }
}
