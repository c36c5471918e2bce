//! `to_datetime` and `strftime` as ansible-core 2.19 has them (Python's `datetime.strptime` and
//! `time.strftime`), and the datetime value `to_datetime` gives: its fields, its methods
//! (`strftime`, `isoformat`, `timestamp`, `weekday`...) and comparisons.
//!
//! What minijinja cannot do: subtract two datetimes (`(a | to_datetime) - (b | to_datetime)`,
//! Python's `timedelta`), since its `-` takes numbers only. The error says to compare
//! `timestamp()`s instead.

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
                        "a datetime has no method `{method}` with {} argument(s); roll's has strftime, isoformat, timestamp, weekday, isoweekday, date and time (subtracting datetimes is not supported: compare their timestamp())",
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
